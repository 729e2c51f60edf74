"""Stop and restart the embedded Temporal server (SQLite) during containment and during review: the
pause carries on, and no update acknowledged to a person is lost."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pausegate.models.phase import Phase
from pausegate.models.state import Tuning
from pausegate.models.updates import ApproveInput, ProposePlanInput
from pausegate.reference.fleet.settings import FaultSettings
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.faults.support import fleet_effects, fleet_faults, until
from tests.support.encryption import TEST_CONVERTER
from tests.support.fault_report import record_result
from tests.support.harness import CISO, COMMANDER, CPO, pause_harness
from tests.workflows.test_lifecycle import NARROWED_PLAN, REVIEW, complete_review

TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SqliteServer:
    """A dev server on a fixed port and SQLite file, to be stopped and started again."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.port = free_port()
        self.env: WorkflowEnvironment | None = None
        self.restarts = 0

    async def start(self) -> Client:
        binary = shutil.which("temporal")
        assert binary
        self.env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary, dev_server_database_filename=str(self.database), port=self.port,
            data_converter=TEST_CONVERTER, dev_server_log_level="error", ui=False,
        )
        return self.env.client

    async def stop(self) -> None:
        if self.env is not None:
            await self.env.shutdown()
            self.env = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()
        self.restarts += 1


@asynccontextmanager
async def sqlite_server(database: Path) -> AsyncIterator[tuple[SqliteServer, Client]]:
    server = SqliteServer(database)
    client = await server.start()
    try:
        yield server, client
    finally:
        await server.stop()


@pytest.mark.slow
async def test_a_server_restart_in_containment_and_in_review_loses_nothing(
    postgres: tuple[str, Path], tmp_path: Path
) -> None:
    dsn, pglog = postgres
    async with sqlite_server(tmp_path / "temporal.sqlite") as (server, client), \
            pause_harness(client, dsn, pglog, tmp_path, agents=100, tuning=TUNING, run_worker=False) as h:
        # The first client outlives the server it connected to: it reconnects to the same address.
        worker: Worker = build_worker(client, h.connectors, task_queue=h.task_queue)
        async with worker, build_urgent_worker(client, h.connectors):
            # Containment in progress: the switch-off is applied and its answer held while the server restarts.
            fleet_faults(h).update(FaultSettings(latency_ms=1, jitter_ms=0, ops=["switch"], hold_after_ms=4_000))
            handle, _ = await h.pause()
            await until(lambda: fleet_faults(h).injected["hold_after"] >= 1, timeout=20, what="containment under way")
            await server.restart()
            fleet_faults(h).update(FaultSettings(latency_ms=1, jitter_ms=0))
            status = await h.wait_for_state(Phase.UNDER_REVIEW, timeout=90)
            assert status.containment.agents.confirmed and status.containment.access_revoked
            assert fleet_effects(h).switch_changes == 1 and fleet_effects(h).collecting == 0

            # Review: every acknowledged completion survives the restart.
            await complete_review(h)
            await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
            await server.restart()
            status = await h.wait_for_state(Phase.AWAITING_APPROVAL, timeout=60)
            assert all(i.done for i in status.checklist) and len(status.checklist) == len(REVIEW)
            assert status.plan is not None and status.approval_digest is not None
            await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
            await server.restart()
            status = await h.status()
            assert [a.actor_id for a in status.approvals] == ["cleo"], "an acknowledged approval was lost"
            await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest or ""))
            final = await handle.result()
        assert final.phase == Phase.RESUMED
        assert fleet_effects(h).switch_changes == 2 and fleet_effects(h).collecting == 100
        accepted = [e for e in final.timeline if e.action in ("checklist.completed", "plan.proposed", "plan.approved")]
        assert len(accepted) == len(REVIEW) + 1 + 2
        record_result("Temporal server restart (SQLite)", "during containment, after review, after one approval",
                      injected=server.restarts,
                      outcome=f"RESUMED; {len(accepted)} acknowledged updates all in the timeline; "
                              "switch applied 2x (off, on)")
