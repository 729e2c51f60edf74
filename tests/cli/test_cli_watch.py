"""``pausegate watch``: an unwatched program answers not found; withdrawing consent is for consent roles only."""

from __future__ import annotations

from tests.api.support import ApiWorld
from tests.cli.conftest import CliRunner


class TestWatchCommands:
    async def test_status_of_an_unwatched_program_is_not_found(self, api: ApiWorld, cli: CliRunner) -> None:
        run = await cli("watch", "status", api.program)
        assert run.code == 3, run
        assert "no watch for program" in run.stderr

    async def test_withdrawing_consent_is_refused_to_anyone_but_a_consent_role(
        self, api: ApiWorld, cli: CliRunner
    ) -> None:
        run = await cli("watch", "withdraw-consent", api.program, "employee_0001", "--reason", "asked", who="cleo")
        assert run.code == 1, run
        assert "withdrawing consent during the watch is for roles privacy-officer" in run.stderr
        # A consent role gets past the rule, to find nothing watched yet.
        run = await cli("watch", "withdraw-consent", api.program, "employee_0001", "--reason", "asked", who="pia")
        assert run.code == 3, run
