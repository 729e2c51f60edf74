"""``pausegate break-glass`` through the API: the analyst asks (a password made here, only its verifier
sent), the holder cannot approve their own request, the commander approves, review roles list the
grants and nobody outside the program does, and the holder returns it early."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest
import pytest_asyncio

from pausegate.models.break_glass import BreakGlassSpec
from tests.api.support import ApiWorld, local
from tests.cli.conftest import CliRunner
from tests.support.break_glass_reads import grant_of
from tests.support.harness import Harness, HarnessFactory

SPEC = BreakGlassSpec(requester_roles=["security-analyst"], approver_roles=["incident-commander"],
                      reviewer_roles=["privacy-officer"], max_duration=timedelta(minutes=30))


@pytest_asyncio.fixture
async def harness(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    """The API's runbook carries the break-glass terms (it is written from this harness's runbook)."""
    async with make_harness(agents=20) as h:
        h.runbook = h.runbook.model_copy(update={"break_glass": SPEC})
        yield h


class TestBreakGlassCli:
    async def test_request_approve_list_and_return_a_grant(self, api: ApiWorld, cli: CliRunner, harness: Harness
                                                           ) -> None:
        p = api.program
        started = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
        assert started.status_code in (200, 201), started.text
        await api.wait_for_state("UNDER_REVIEW", timeout=120)

        not_a_requester = await cli("break-glass", "request", p, "--dataset", "telemetry", "--table", "keystrokes",
                                    "--reason", "curious", who="dave")
        assert not_a_requester.code != 0 and "security-analyst" in not_a_requester.stderr

        asked = await cli("break-glass", "request", p, "--dataset", "telemetry", "--table", "keystrokes:id,employee",
                          "--reason", "confirm what was typed into the leaked rows", "--minutes", "10", who="ann")
        assert asked.code == 0, asked.stderr
        assert "requested" in asked.stdout and "password (shown once, sent nowhere): " in asked.stdout
        password = asked.stdout.split("password (shown once, sent nowhere): ", 1)[1].split()[0]

        missing = await api.client("carol").post(f"/v1/pauses/{p}/break-glass/g9/approve")
        assert missing.status_code == 404 and missing.json()["error"] == "unknown_grant"
        too_long = await api.client("ann").post(f"/v1/pauses/{p}/break-glass", json={
            "dataset": "telemetry", "tables": [{"table": "keystrokes"}], "reason": "r", "duration": "PT2H"})
        assert too_long.status_code == 422 and too_long.json()["error"] == "too_long"
        own = await cli("break-glass", "approve", p, "g1", who="ann")
        assert own.code != 0
        approved = await cli("break-glass", "approve", p, "g1", "--json", who="carol")
        assert approved.code == 0, approved.stderr
        assert json.loads(approved.stdout)["actor"] == local("carol")
        grant = await grant_of(api, "open")
        assert grant["holder"] == local("ann") and grant["scram_verifier"] is None  # never shown back
        assert grant["tables"] == [{"table": "keystrokes", "columns": ["id", "employee"]}]
        assert password not in json.dumps(await api.view("carol"))
        with psycopg.connect(harness.dsn_as(grant["role"])) as conn:
            assert conn.execute("SELECT count(*) >= 0 FROM telemetry.keystrokes WHERE employee <> ''"
                                ).fetchone() == (True,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT typed_content FROM telemetry.keystrokes")

        listed = await cli("break-glass", "list", p, who="pia")
        assert listed.code == 0 and "g1" in listed.stdout and "keystrokes" in listed.stdout
        # the runbook's static role is shown beside the grants, as the standing exception it is
        standing = json.loads((await cli("break-glass", "list", p, "--json", who="pia")).stdout)["standing"]
        assert standing == [{"dataset": "telemetry", "role": "security_breakglass", "reads": 0, "failed": 0,
                             "objects": []}]
        assert "standing exceptions" in listed.stdout and "security_breakglass" in listed.stdout
        status = await cli("status", p, who="pia")
        assert status.code == 0 and "break-glass grants" in status.stdout and "standing exceptions" in status.stdout
        outsider = await cli("break-glass", "list", p, who="ada")  # an admin has no part in the program
        assert outsider.code != 0 and "g1" not in outsider.stdout

        returned = await cli("break-glass", "end", p, "g1", "--reason", "done", who="ann")
        assert returned.code == 0, returned.stderr
        closed = await grant_of(api, "closed")
        assert closed["closed"]["ended_by"] == local("ann") and closed["closed"]["verified"]
