"""A runbook checked against the deployment: problems told to the commander at trigger (the pause starts
all the same), and blocked containment steps retried or waived through the API and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from pausegate.api.deployment import deployment_problems
from pausegate.config import FleetConnection, PostgresConnection, Settings, WebhookConnection
from pausegate.models.runbook import AuditSourceSpec, NotificationSpec
from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness, example_runbook

STEP = "containment.dataset.telemetry"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def cli(api: ApiWorld, tmp_path: Path, *args: str, who: str = "carol") -> Run:
    """``pausegate ARGS`` in a subprocess as ``who`` (awaited: the API serves from this event loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSEGATE_")}
    env.update({"PAUSEGATE_API_URL": api.url, "PAUSEGATE_TOKEN": api.tokens[who], "COLUMNS": "200",
                "NO_COLOR": "1", "HOME": str(tmp_path)})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pausegate.cli.main", *args, env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


class TestDeploymentProblems:
    def test_every_connection_is_checked_for_existence_and_kind(self) -> None:
        runbook = example_runbook("p")
        settings = Settings(connections={
            "telemetry-db": PostgresConnection(dsn="postgresql://x/y"),  # type: ignore[arg-type]  # no log_dir
            "telemetry-fleet": PostgresConnection(dsn="postgresql://x/z"),  # type: ignore[arg-type]
            "slack-security": WebhookConnection(url="https://hooks.example/x"),  # type: ignore[arg-type]
        })
        runbook = runbook.model_copy(update={
            "audit_sources": [*runbook.audit_sources,
                              AuditSourceSpec(name="files", kind="jsonl", path="/var/log/x.jsonl")],
            "notifications": [*runbook.notifications, NotificationSpec(name="pager", connection="pager-hook")],
        })
        configured = "slack-security, telemetry-db, telemetry-fleet"
        assert deployment_problems(runbook, settings) == [
            "the fleet names connection 'telemetry-fleet', a postgres connection; it needs fleet",
            "audit source 'db-reads' reads the server log of connection 'telemetry-db', which has no log_dir",
            "audit source 'fleet-audit' names connection 'telemetry-fleet', a postgres connection; it needs fleet",
            f"notification 'pager' names connection 'pager-hook', which this deployment does not have "
            f"(configured: {configured})",
        ]

    def test_a_deployment_that_has_everything_has_no_problems(self, harness: Harness) -> None:
        assert deployment_problems(harness.runbook, harness.settings) == []
        fleet = harness.settings.connections["telemetry-fleet"]
        assert isinstance(fleet, FleetConnection)


@pytest_asyncio.fixture
async def mistaken(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    """The example's runbook naming a database connection this deployment does not have."""
    [dataset] = harness.runbook.datasets
    harness.runbook = harness.runbook.model_copy(
        update={"datasets": [dataset.model_copy(update={"connection": "late-db"})]})
    async with api_world(harness, tmp_path / "api") as api:
        yield api


class TestMistakenRunbook:
    async def test_the_commander_is_told_at_trigger_and_retries_the_step_once_it_is_fixed(
        self, mistaken: ApiWorld, tmp_path: Path
    ) -> None:
        api, h, p = mistaken, mistaken.harness, mistaken.program
        paused = await cli(api, tmp_path, "pause", p, "--reason", "leak", "--no-wait", "--json")
        assert paused.code == 0, paused.stderr
        problem = ("dataset 'telemetry' names connection 'late-db', which this deployment does not have "
                   "(configured: slack-security, telemetry-db, telemetry-fleet)")
        assert json.loads(paused.stdout)["problems"] == [problem]
        assert f"warning: {problem}" in paused.stderr
        assert json.loads(paused.stdout)["started"] is True  # pulling the switch always starts containment

        # The dataset step blocks while the rest of containment carries on: the switch goes off.
        await api.wait_for(lambda v: any(b["step"] == STEP for b in v["containment"]["blocked"])
                           and v["progress"]["switch_off"], what="the dataset step blocked, the switch off")

        # Only a commander decides, and only on a step that is blocked; the CLI says why and exits 1.
        not_commander = await cli(api, tmp_path, "retry-step", p, STEP, who="ann")
        assert not_commander.code == 1 and "wrong_role" in not_commander.stderr
        not_blocked = await cli(api, tmp_path, "retry-step", p, "containment.dataset.other")
        assert not_blocked.code == 1 and "not_blocked" in not_blocked.stderr

        # The configuration is fixed (as a worker restart would), then the commander retries.
        h.settings.connections["late-db"] = PostgresConnection(dsn=h.database_dsn)  # type: ignore[arg-type]
        retried = await cli(api, tmp_path, "retry-step", p, STEP)
        assert retried.code == 0, retried.stderr
        assert f"{STEP} will be tried again" in retried.stdout
        view = await api.wait_for_state("UNDER_REVIEW")
        assert view["containment"]["blocked"] == [] and view["progress"]["access_revoked"]
        carol = (await api.client("carol").get("/v1/whoami")).json()["id"]
        assert any(e["action"] == f"{STEP}.retry" and e["actor"] == carol for e in view["timeline"])

    async def test_the_commander_waives_a_blocked_step_with_a_reason(self, mistaken: ApiWorld) -> None:
        api, p = mistaken, mistaken.program
        r = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
        assert r.status_code == 201 and len(r.json()["problems"]) == 1
        await api.wait_for(lambda v: any(b["step"] == STEP for b in v["containment"]["blocked"]), what="blocked")

        no_reason = await api.client("carol").post(f"/v1/pauses/{p}/blocked-steps/waive", json={"step": STEP})
        assert no_reason.status_code == 422
        r = await api.client("carol").post(f"/v1/pauses/{p}/blocked-steps/waive",
                                           json={"step": STEP, "reason": "revoked by hand, ticket 42"})
        assert r.status_code == 200, r.text
        view = await api.wait_for_state("UNDER_REVIEW")
        assert STEP in view["containment"]["waived_steps"] and not view["progress"]["access_revoked"]
        again = await api.client("carol").post(f"/v1/pauses/{p}/blocked-steps/retry", json={"step": STEP})
        assert again.status_code == 409 and again.json()["error"] == "not_blocked"

    async def test_the_cli_waives_a_blocked_step(self, mistaken: ApiWorld, tmp_path: Path) -> None:
        api, p = mistaken, mistaken.program
        r = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
        assert r.status_code == 201
        await api.wait_for(lambda v: any(b["step"] == STEP for b in v["containment"]["blocked"]), what="blocked")
        usage = await cli(api, tmp_path, "waive-step", p, STEP)
        assert usage.code == 2  # --reason is required
        waived = await cli(api, tmp_path, "waive-step", p, STEP, "--reason", "revoked by hand", "--json")
        assert waived.code == 0, waived.stderr
        assert json.loads(waived.stdout)["message"] == f"{STEP} waived"
        assert STEP in (await api.wait_for_state("UNDER_REVIEW"))["containment"]["waived_steps"]
