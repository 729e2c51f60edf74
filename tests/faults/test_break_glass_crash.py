"""Kill -9 the worker shortly before a break-glass grant's end: the grant's timer is the server's, so a
new worker closes it (login off, privileges revoked, its session ended, verified), once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from temporalio.api.enums.v1 import EventType

from pausegate.embedded.postgres import dsn_as
from pausegate.models.break_glass import ApproveBreakGlassInput, Grant, RequestBreakGlassInput, TableAccess
from pausegate.models.phase import Phase
from pausegate.models.state import Tuning
from pausegate.temporal.pauses import pause_handle
from tests.faults.support import WorkerProcess, until
from tests.support.fault_report import record_result
from tests.support.harness import ANALYST, COMMANDER, Harness, HarnessFactory
from tests.workflows.test_break_glass import SPEC, wait_grant

CRASH_TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=1.5,
                      workflow_task_timeout_seconds=2.0)
DURATION = timedelta(seconds=12)
BEFORE_END = timedelta(seconds=3)


async def open_grant(h: Harness, duration: timedelta) -> Grant:
    """The pause under review, and the analyst's grant on the keystrokes approved and open."""
    await h.pause()
    await h.wait_for_state(Phase.UNDER_REVIEW, timeout=120)
    await h.act(RequestBreakGlassInput(actor=ANALYST, dataset="telemetry", tables=[TableAccess(table="keystrokes")],
                                       reason="confirm the leaked rows", duration=duration))
    await h.act(ApproveBreakGlassInput(actor=COMMANDER, grant_id="g1"))
    return await wait_grant(h, "g1", "open")


class TestBreakGlassCrash:
    async def test_a_worker_killed_before_the_end_of_a_grant_still_closes_it_once(
            self, make_harness: HarnessFactory, temporal_address: str, tmp_path: Path) -> None:
        async with make_harness(run_worker=False, agents=20, tuning=CRASH_TUNING) as h:
            h.runbook = h.runbook.model_copy(update={"break_glass": SPEC})
            worker = WorkerProcess(h, temporal_address, tmp_path / "worker")
            await worker.start()
            try:
                grant = await open_grant(h, DURATION)
                assert grant.ends_at is not None
                holder = psycopg.connect(dsn_as(h.database_dsn, grant.role), autocommit=True)
                assert holder.execute("SELECT count(*) >= 0 FROM telemetry.keystrokes").fetchone() == (True,)

                # the scenario is a moment: the worker dies shortly before the server's timer fires
                await until(lambda: datetime.now(UTC) >= grant.ends_at - BEFORE_END,  # type: ignore[operator]
                            timeout=60, what="shortly before the grant's end")
                worker.kill()
                await worker.start()

                closed = (await wait_grant(h, "g1", "closed", timeout=120)).closed
                assert closed is not None and closed.verified and closed.sessions_terminated == 1
                with pytest.raises(psycopg.OperationalError):
                    holder.execute("SELECT 1")
                holder.close()
                with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
                    psycopg.connect(dsn_as(h.database_dsn, grant.role))

                status = await h.status()
                assert [e.action for e in status.timeline].count("break_glass.closed") == 1
                child = h.client.get_workflow_handle(f"{pause_handle(h.client, h.program).id}/break-glass/{grant.role}")
                closes = [e async for e in child.fetch_history_events()
                          if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                          and e.activity_task_scheduled_event_attributes.activity_type.name == "close_break_glass"]
                assert len(closes) == 1
                await asyncio.wait_for(child.result(), timeout=60)
            finally:
                worker.stop()
            assert closed.closed_at is not None
            # a figure, not a limit: how long after its end the grant was closed with a worker killed before it
            late = (closed.closed_at - grant.ends_at).total_seconds()
            print(f"break-glass closed {late:.2f} s after its end (worker killed {BEFORE_END.total_seconds():.0f} s "
                  "before it)")
            record_result("worker killed (SIGKILL)", "shortly before a break-glass grant's end", injected=1,
                          outcome="the grant closed once: login off, its session ended, verified",
                          sessions_terminated=closed.sessions_terminated, closed_after_end_s=round(late, 2))
