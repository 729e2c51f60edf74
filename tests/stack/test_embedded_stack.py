"""The embedded stack starts every part, and stopped and started again on the same data it loses nothing."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from temporalio.client import Client

from pausegate.config import load_settings
from pausegate.embedded.api_database import STATE_DATABASE
from pausegate.embedded.postgres import dsn_for_database
from pausegate.embedded.stack import EXAMPLE_PROGRAM, RunningStack, StackOptions, embedded_stack
from pausegate.models.phase import Phase
from pausegate.models.plan import CopyDecision
from pausegate.models.updates import ApproveInput, CompleteItemInput, ProposePlanInput
from pausegate.temporal.pauses import pause_handle, read_status
from pausegate.temporal.roles import PROOF_NICENESS
from tests.support.harness import ANALYST, CISO, COMMANDER, CPO
from tests.support.pauses import act
from tests.support.polling import polled
from tests.workflows.test_lifecycle import NARROWED_PLAN, REVIEW, can_read


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's private tmp dir: the embedded PostgreSQL runs as its own user.
    path = Path(tempfile.mkdtemp(prefix="pausegate-stack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
    # Started as root, the embedded PostgreSQL keeps its cluster beside the owner-only data directory.
    shutil.rmtree(path.with_name(f"{path.name}-postgres"), ignore_errors=True)
    shutil.rmtree(path.with_name(f"{path.name}-runbooks"), ignore_errors=True)


def options(data_dir: Path) -> StackOptions:
    return StackOptions(data_dir=data_dir, agents=300, temporal_port=None, ui_port=None,
                        fleet_latency_ms=1.0, fleet_jitter_ms=1.0, telemetry_tick_seconds=0.1,
                        runbooks_dir=token_approved_runbooks(data_dir.with_name(f"{data_dir.name}-runbooks")))


def token_approved_runbooks(directory: Path) -> Path:
    """The runbooks, the worked example's approvals taken with a token: this test is about the stack
    restarting (signed approvals: tests/approvals, tests/cli/test_cli_ssh_approval.py)."""
    if not directory.exists():
        shutil.copytree(Path(__file__).resolve().parents[2] / "runbooks", directory)
        example = directory / "employee-telemetry.yaml"
        example.write_text(example.read_text().replace("signatures: required", "signatures: optional"))
    return directory


async def processes_that_ran(client: Client) -> dict[str, set[int]]:
    """For each step of the pause's history (workflow tasks as one), the process ids of the workers that
    picked it up (a worker's identity is ``pid@host``)."""
    history = await pause_handle(client, EXAMPLE_PROGRAM).fetch_history()
    names: dict[int, str] = {}
    ran: dict[str, set[int]] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            ran.setdefault(names[started.scheduled_event_id], set()).add(int(started.identity.split("@")[0]))
        elif event.HasField("workflow_task_started_event_attributes"):
            identity = event.workflow_task_started_event_attributes.identity
            ran.setdefault("workflow task", set()).add(int(identity.split("@")[0]))
    return ran


async def wait_state(stack: RunningStack, *states: Phase) -> None:
    await polled(lambda: read_status(stack.temporal.client, EXAMPLE_PROGRAM), until=lambda s: s.phase in states,
                 what=f"the pause in {states}")


class TestEmbeddedStack:
    async def test_an_open_pause_goes_on_after_the_stack_restarts(self, data_dir: Path) -> None:
        async with embedded_stack(options(data_dir)) as stack:
            described = stack.describe()
            assert {"temporal", "fleet", "chat", "postgres", "config"} <= described.keys()
            # Clients find everything through the config file the stack wrote.
            settings = load_settings(stack.config_path)
            # Owner-only: the directory, and each file in it that holds a secret.
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (data_dir, stack.config_path)}
            assert modes == {data_dir.name: 0o700, "config.toml": 0o600}
            # Users, their log and the refusal log live in a state database of the stack's own, which the
            # telemetry's readers cannot even connect to.
            assert settings.api.state == "postgres" and settings.api.state_db is not None
            assert not settings.api.users_file.exists()
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                psycopg.connect(dsn_for_database(stack.database_dsn.replace("postgres:@", "employee_0001:@"),
                                                 STATE_DATABASE)).close()
            assert settings.connections.keys() >= {"telemetry-db", "telemetry-fleet", "slack-security"}
            async with httpx.AsyncClient(base_url=stack.fleet.url) as fleet:
                assert (await fleet.get("/healthz")).status_code == 200
            employee = stack.database_dsn.replace("postgres:@", "employee_0001:@")
            assert can_read(employee, "keystrokes")

            # The first start creates an administrator who may pull the kill switch through the API.
            assert stack.admin_token and any(stack.admin_token in line for line in stack.instructions())
            async with httpx.AsyncClient(base_url=stack.api_url,
                                         headers={"Authorization": f"Bearer {stack.admin_token}"}) as api:
                assert (await api.get("/v1/whoami")).json()["roles"] == ["admin", "incident-commander"]
                response = await api.post("/v1/pauses", json={"program": EXAMPLE_PROGRAM, "reason": "leak"})
                assert response.status_code == 201, response.text
            client = stack.temporal.client
            await wait_state(stack, Phase.UNDER_REVIEW)
            # The workflow tasks ran in the stack's process, the halts and the revoke on the urgent worker and the
            # steps that prove the pause on the proof worker: each a process of its own, as history records.
            assert stack.urgent_worker is not None and stack.urgent_worker.returncode is None
            assert stack.proof_worker is not None and stack.proof_worker.returncode is None
            ran_in = await processes_that_ran(client)
            assert ran_in["workflow task"] == {os.getpid()}
            assert ran_in["halt_agents"] == ran_in["revoke_dataset"] == {stack.urgent_worker.pid}
            assert ran_in["snapshot_audit_source"] == ran_in["verify_dataset"] == {stack.proof_worker.pid}
            # and the proof worker gives way to the others when the cores are short
            niceness = os.getpriority(os.PRIO_PROCESS, stack.proof_worker.pid) - os.getpriority(os.PRIO_PROCESS, 0)
            assert niceness == PROOF_NICENESS
            item, actor, evidence = REVIEW[0]
            await act(client, EXAMPLE_PROGRAM, CompleteItemInput(
                actor=actor, item_id=item, evidence=[{"name": evidence, "uri": "https://docs.example.com/a"}]))

        # Everything stopped; start again on the same data directory.
        async with embedded_stack(options(data_dir)) as stack:
            assert stack.admin_token is None  # tokens are shown once; the hash stays
            client = stack.temporal.client
            status = await read_status(client, EXAMPLE_PROGRAM)
            assert status.phase == Phase.UNDER_REVIEW
            assert next(i for i in status.checklist if i.id == item).completed_by == ANALYST.id
            # The fleet kept its state: the program is still switched off, no agent collecting.
            async with httpx.AsyncClient(base_url=stack.fleet.url) as fleet:
                switch = (await fleet.get(f"/v1/programs/{EXAMPLE_PROGRAM}/switch")).json()
                collecting = (await fleet.get(f"/v1/programs/{EXAMPLE_PROGRAM}/agents",
                                              params={"state": "collecting"})).json()
            assert switch["enabled"] is False and collecting["total"] == 0
            assert not can_read(stack.database_dsn.replace("postgres:@", "employee_0001:@"), "keystrokes")

            for item_id, actor, evidence in REVIEW[1:]:
                await act(client, EXAMPLE_PROGRAM, CompleteItemInput(
                    actor=actor, item_id=item_id, evidence=[{"name": evidence, "uri": f"https://d/{item_id}"}]))
            # the curious employee's copy in the sandbox was found and quarantined: the plan drops it
            copies = (await read_status(client, EXAMPLE_PROGRAM)).containment.copies
            assert copies is not None and copies.quarantined == len(copies.undecided) == 1
            plan = NARROWED_PLAN.model_copy(update={
                "copies": [CopyDecision(copy_id=c, action="drop") for c in copies.undecided]})
            await act(client, EXAMPLE_PROGRAM, ProposePlanInput(actor=COMMANDER, plan=plan))
            await wait_state(stack, Phase.AWAITING_APPROVAL)
            digest = (await read_status(client, EXAMPLE_PROGRAM)).approval_digest
            assert digest
            await act(client, EXAMPLE_PROGRAM, ApproveInput(actor=CISO, role="ciso", digest=digest))
            await act(client, EXAMPLE_PROGRAM, ApproveInput(actor=CPO, role="cpo", digest=digest))
            await wait_state(stack, Phase.RESUMED)
            with psycopg.connect(stack.database_dsn.replace("postgres:@", "ml_trainer:@")) as conn:
                conn.execute("SELECT x FROM telemetry.mouse_events LIMIT 1")
