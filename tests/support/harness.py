"""A pause harness: real Temporal, real PostgreSQL, the reference fleet and chat sink, a worker.

Each test gets its own program id, database, fleet, evidence directory and task queue, so
tests never see each other's pauses; the Temporal server and PostgreSQL cluster are shared.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from pausegate.config import (
    EvidenceSettings,
    FleetConnection,
    PostgresConnection,
    S3EvidenceSettings,
    Settings,
    TemporalSettings,
    WebhookConnection,
)
from pausegate.connectors.registry import Connectors
from pausegate.embedded.postgres import dsn_as
from pausegate.embedded.stack import prepare_database
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.runbook import Runbook
from pausegate.models.state import PauseState, Tuning
from pausegate.reference.chat_sink import ChatSink, RunningSink
from pausegate.reference.fleet.server import RunningFleet, serve_fleet
from pausegate.reference.fleet.settings import FaultSettings, FleetSettings
from pausegate.runbook.loader import load_runbook
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.support.encryption import TEST_ENCRYPTION
from tests.support.pauses import act
from tests.support.polling import HANG_GUARD_SECONDS, polled

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RUNBOOK = ROOT / "runbooks" / "employee-telemetry.yaml"

COMMANDER = Actor(id="carol", roles=["incident-commander"])
ANALYST = Actor(id="ann", roles=["security-analyst"])
SECURITY_LEAD = Actor(id="sam", roles=["security-lead"])
DATA_ENGINEER = Actor(id="dave", roles=["data-engineer"])
PRIVACY = Actor(id="pia", roles=["privacy-officer"])
LEGAL = Actor(id="lee", roles=["legal-counsel"])
CISO = Actor(id="cleo", roles=["ciso"])
CPO = Actor(id="pat", roles=["cpo"])
CTO = Actor(id="tom", roles=["cto"])

FAST_TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=5.0)


def example_runbook(program: str) -> Runbook:
    """The worked example's runbook, for a program id of the test's own. Its approvals are taken with a
    token alone: the worked example requires them signed, and tests/approvals test exactly that; the
    other tests approve to reach what they test."""
    runbook = load_runbook(EXAMPLE_RUNBOOK)
    policy = runbook.resume_policy.model_copy(update={"signatures": "optional"})
    return runbook.model_copy(update={"program": runbook.program.model_copy(update={"id": program}),
                                      "resume_policy": policy})


@dataclass
class Harness:
    """One test's pause world."""

    client: Client
    program: str
    runbook: Runbook
    settings: Settings
    database_dsn: str
    fleet: RunningFleet
    chat: RunningSink
    connectors: Connectors
    task_queue: str
    tuning: Tuning = field(default_factory=lambda: FAST_TUNING)

    @property
    def fleet_state(self) -> Any:
        """The reference fleet's in-memory state (for counting effects)."""
        return self.fleet.app.state.service

    def dsn_as(self, role: str) -> str:
        return dsn_as(self.database_dsn, role)

    async def pause(self, commander: Actor = COMMANDER, reason: str = "telemetry readable company-wide") \
            -> tuple[WorkflowHandle[Any, PauseState], bool]:
        request = PauseRequest(program=self.program, reason=reason, commander=commander, runbook=self.runbook)
        return await start_pause(self.client, request, task_queue=self.task_queue, tuning=self.tuning)

    async def status(self) -> PauseState:
        return await read_status(self.client, self.program)

    async def act(self, action: Any) -> Any:
        return await act(self.client, self.program, action)

    async def wait_for(self, predicate: Callable[[PauseState], bool], *, timeout: float = HANG_GUARD_SECONDS,
                       what: str = "condition") -> PauseState:
        """The pause's first status that ``predicate`` accepts; ``timeout`` only guards against a hang."""
        return await polled(self.status, until=predicate, what=what, guard=timeout)

    async def eventually(self, check: Callable[[], bool], *, timeout: float = HANG_GUARD_SECONDS,
                         what: str = "condition") -> None:
        """Wait until ``check`` on in-process state holds; ``timeout`` only guards against a hang."""
        async def holds() -> bool:
            return check()
        await polled(holds, what=what, every=0.05, guard=timeout)

    async def wait_for_state(self, *states: Phase, timeout: float = HANG_GUARD_SECONDS) -> PauseState:
        return await self.wait_for(lambda s: s.phase in states, timeout=timeout, what=f"state in {states}")


HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@asynccontextmanager
async def pause_harness(
    client: Client,
    admin_dsn: str,
    pglog: Path,
    tmp_path: Path,
    *,
    agents: int = 200,
    offline_agents: list[str] | None = None,
    tuning: Tuning | None = None,
    faults: FaultSettings | None = None,
    tick_seconds: float = 0.1,
    run_worker: bool = True,
    fleet_url: Callable[[str], str] = lambda url: url,
    evidence_s3: S3EvidenceSettings | None = None,
) -> AsyncIterator[Harness]:
    """Everything one pause test needs, torn down afterwards. ``evidence_s3``: seal into that bucket
    (``tests.support.s3_server``) instead of a local evidence directory."""
    program = f"telemetry-{uuid.uuid4().hex[:10]}"
    database = program.replace("-", "_")
    database_dsn = await asyncio.to_thread(prepare_database, admin_dsn, database, employees=5)
    fleet_settings = FleetSettings(
        programs=[program],
        agents=agents,
        employees=5,
        offline_agents=offline_agents or [],
        telemetry_dsn=dsn_as(database_dsn, "telemetry_ingest"),  # type: ignore[arg-type]
        tick_seconds=tick_seconds,
        max_rows_per_tick=20,
        faults=faults or FaultSettings(latency_ms=1.0, jitter_ms=1.0),
    )
    task_queue = f"pausegate-test-{uuid.uuid4().hex[:8]}"
    async with serve_fleet(fleet_settings) as fleet, RunningSink(ChatSink()) as chat:
        settings = Settings(
            temporal=TemporalSettings(task_queue=task_queue),
            encryption=TEST_ENCRYPTION,  # the session client's keys: a worker process or CLI built from these reads it
            evidence=EvidenceSettings(
                directory=tmp_path / "evidence", signing_key=tmp_path / "keys" / "key.pem",
                store="s3" if evidence_s3 else "local", s3=evidence_s3,
            ),
            connections={
                "telemetry-db": PostgresConnection(dsn=database_dsn, log_dir=pglog),  # type: ignore[arg-type]
                "telemetry-fleet": FleetConnection(url=fleet_url(fleet.url)),  # type: ignore[arg-type]
                "slack-security": WebhookConnection(url=chat.hook_url("security")),  # type: ignore[arg-type]
            },
        )
        connectors = Connectors(settings)
        harness = Harness(
            client=client, program=program, runbook=example_runbook(program), settings=settings,
            database_dsn=database_dsn, fleet=fleet, chat=chat, connectors=connectors, task_queue=task_queue,
            tuning=tuning or FAST_TUNING,
        )
        try:
            if run_worker:
                worker: Worker = build_worker(client, connectors, task_queue=task_queue)
                async with worker, build_urgent_worker(client, connectors):
                    yield harness
            else:
                yield harness
        finally:
            await connectors.aclose()
            if (close_store := getattr(connectors.evidence_store, "aclose", None)) is not None:
                await close_store()
