"""``pausegate status --scope`` lists a grant's reads as break-glass reads, read from the grant's sealed
document the pause recorded (its JSON the API's entries as they are); without ``--scope`` nothing of them."""

from __future__ import annotations

import json

from tests.api.support import ApiWorld, local
from tests.cli.conftest import CliRunner
from tests.support.break_glass_reads import a_grant_that_read, expected_entries
from tests.support.harness import Harness


class TestBreakGlassReadsInStatus:
    async def test_status_scope_lists_the_grants_reads_as_break_glass(self, api: ApiWorld, cli: CliRunner,
                                                                       harness: Harness) -> None:
        closed = await a_grant_that_read(api, harness)
        p = api.program

        status = await cli("status", p, "--scope", who="pia")
        assert status.code == 0, status.stderr
        assert "Who saw what: break-glass reads" in status.stdout
        row = next(line for line in status.stdout.splitlines() if "break-glass" in line and " g1 " in line)
        for cell in (local("ann"), "keystrokes(id, employee)", "telemetry.keystrokes", " 2 ", " 1 "):
            assert cell in row, (cell, row)

        as_json = json.loads((await cli("status", p, "--scope", "--json", who="pia")).stdout)
        entries = [{k: e[k] for k in expected_entries(closed, "")[0]} for e in as_json["break_glass_reads"]]
        assert entries == expected_entries(closed, local("ann"))

        plain = await cli("status", p, who="pia")
        assert plain.code == 0 and "break-glass reads" not in plain.stdout
