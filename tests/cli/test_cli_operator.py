"""The operator commands driven as people drive them: a real process against the real API and stack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml

from tests.api.support import NARROWED_PLAN, REVIEW, ApiWorld
from tests.cli.conftest import CliRunner


class TestOperatorCommands:
    async def test_pause_complete_plan_approve_and_report(self, api: ApiWorld, cli: CliRunner, tmp_path: Path) -> None:
        p = api.program
        paused = await cli("pause", p, "--reason", "telemetry readable company-wide", "--interval", "0.1")
        assert paused.code == 0, paused.stderr
        lines = paused.stdout.splitlines()
        progress = [line for line in lines if "agents halted" in line]
        # Live progress: several readings, the last one with every agent halted.
        assert len(progress) >= 2, paused.stdout
        assert "agents halted 200 of 200" in progress[-1]
        assert any(line.startswith("contained at") for line in lines), paused.stdout

        again = await cli("pause", p, "--reason", "again", "--json", "--no-wait")
        assert again.code == 0
        assert json.loads(again.stdout)["started"] is False

        for item, who, name in REVIEW:
            done = await cli(
                "complete", p, item, "--evidence", f"{name}=https://docs.example.com/{item}@{'ab' * 32}", who=who
            )
            assert done.code == 0, done.stderr
            assert f"item {item} complete" in done.stdout

        checklist = await cli("checklist", p, "--json", who="ann")
        assert all(i["completed_by"] for i in json.loads(checklist.stdout))

        plan_file = tmp_path / "plan.yaml"
        plan_file.write_text(yaml.safe_dump(NARROWED_PLAN))
        proposed = await cli("plan", p, str(plan_file), "--json")
        assert proposed.code == 0, proposed.stderr
        assert json.loads(proposed.stdout)["state"] == "AWAITING_APPROVAL"

        refused = await cli("approve", p, who="ann")
        assert refused.code == 1
        assert "wrong_role" in refused.stderr

        for who in ("cleo", "pat"):
            approved = await cli("approve", p, "--comment", "narrowed enough", who=who)
            assert approved.code == 0, approved.stderr
            assert "approving digest" in approved.stdout

        await api.wait_for_state("RESUMED", timeout=90)
        report = await cli("report", p, who="tom")
        assert report.code == 0, report.stderr
        assert report.stdout.startswith(f"# Pause report: {p}")
        assert "local:cleo (ciso) approved" in report.stdout
        as_json = await cli("report", p, "--format", "json", who="tom")
        assert json.loads(as_json.stdout)["status"]["state"] == "RESUMED"

        status = await cli("status", p, who="tom")
        assert status.code == 0 and "RESUMED" in status.stdout

    async def test_exit_codes_scripts_can_rely_on(self, api: ApiWorld, cli: CliRunner) -> None:
        no_token = await cli("pauses", who=None)
        assert no_token.code == 2 and "PAUSEGATE_TOKEN" in no_token.stderr
        bad_token = await cli("pauses", who=None, env={"PAUSEGATE_TOKEN": "pgt_nope"})
        assert bad_token.code == 1 and "invalid_token" in bad_token.stderr
        unknown = await cli("status", "no-such-program", "--json")
        assert unknown.code == 3 and json.loads(unknown.stdout)["error"] == "unknown_program"
        no_pause = await cli("status", api.program)
        assert no_pause.code == 3
        refused = await cli("pause", api.program, "--reason", "x", who="ann")
        assert refused.code == 1 and "wrong_role" in refused.stderr
        usage = await cli("waive", api.program, "--reason", "x")
        assert usage.code == 2
        unreachable = await cli("pauses", env={"PAUSEGATE_API_URL": "http://127.0.0.1:9"})
        assert unreachable.code == 4

    async def test_users_are_managed_through_the_api_by_an_admin_only(
        self, api: ApiWorld, cli: CliRunner, tmp_path: Path
    ) -> None:
        # The commander is no admin: the API refuses, and nothing is added.
        refused = await cli("users", "add", "vera", "--role", "security-analyst", who="carol")
        assert refused.code == 1 and "wrong_role" in refused.stderr

        added = await cli("users", "add", "vera", "--role", "security-analyst", "--json", who="ada")
        assert added.code == 0, added.stderr
        token = json.loads(added.stdout)["token"]
        assert token not in await asyncio.to_thread(api.settings.api.users_file.read_text)
        who = await api.client(token=token).get("/v1/whoami")
        assert who.json() == {"id": "local:vera", "roles": ["security-analyst"]}

        listed = await cli("users", "list", "--json", who="ada")
        assert {"name": "vera", "roles": ["security-analyst"]}.items() <= next(
            u for u in json.loads(listed.stdout) if u["name"] == "vera").items()
        changed = await cli("users", "roles", "vera", "--role", f"ciso@{api.program}", who="ada")
        assert changed.code == 0 and f"ciso@{api.program}" in changed.stdout
        removed = await cli("users", "remove", "vera", who="ada")
        assert removed.code == 0, removed.stderr
        assert (await api.client(token=token).get("/v1/whoami")).status_code == 401

        # Every change is in the log, by the admin who made it; the log is intact, so the exit is 0.
        log = await cli("users", "log", "--json", who="ada")
        assert log.code == 0, log.stdout
        changes = [(e["by"], e["action"]) for e in json.loads(log.stdout)["entries"] if e["by"] == "local:ada"]
        assert changes == [("local:ada", "user.added"), ("local:ada", "user.roles_changed"),
                           ("local:ada", "user.removed")]

    async def test_refusals_shows_what_no_timeline_holds_and_fails_on_a_broken_chain(
        self, api: ApiWorld, cli: CliRunner
    ) -> None:
        refused = await cli("pause", api.program, "--reason", "x", who="ann")
        assert refused.code == 1
        not_admin = await cli("refusals")
        assert not_admin.code == 1 and "wrong_role" in not_admin.stderr
        admin = {"PAUSEGATE_TOKEN": api.tokens["ada"]}

        shown = await cli("refusals", "--program", api.program, "--json", who=None, env=admin)
        assert shown.code == 0, shown.stderr
        entries = json.loads(shown.stdout)["entries"]
        assert [(e["actor"], e["action"]) for e in entries] == [("local:ann", "refused.trigger")]
        table = await cli("refusals", who=None, env=admin)
        assert "refused.trigger" in table.stdout and "refused.read_refusals" in table.stdout

        log = api.settings.api.refusal_log
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[1:]))  # the first refusal removed
        broken = await cli("refusals", who=None, env=admin)
        assert broken.code == 1 and "chain broken" in broken.stdout
