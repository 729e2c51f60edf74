"""Kill -9 the worker just after the holder's early return was accepted: the pause took the request and
told the grant's workflow, whose history holds it, so a new worker closes the grant (login off,
privileges revoked, its session ended, verified), once, as ended by the holder."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from temporalio.api.enums.v1 import EventType

from pausegate.embedded.postgres import dsn_as
from pausegate.models.break_glass import (
    EndBreakGlassInput,
)
from pausegate.temporal.pauses import pause_handle
from tests.faults.support import WorkerProcess
from tests.faults.test_break_glass_crash import CRASH_TUNING, open_grant
from tests.support.fault_report import record_result
from tests.support.harness import ANALYST, HarnessFactory
from tests.workflows.test_break_glass import SPEC, wait_grant


class TestBreakGlassReturnCrash:
    async def test_a_worker_killed_just_after_an_early_return_was_accepted_still_closes_the_grant_once(
            self, make_harness: HarnessFactory, temporal_address: str, tmp_path: Path) -> None:
        async with make_harness(run_worker=False, agents=20, tuning=CRASH_TUNING) as h:
            h.runbook = h.runbook.model_copy(update={"break_glass": SPEC})
            worker = WorkerProcess(h, temporal_address, tmp_path / "worker")
            await worker.start()
            try:
                # long enough that only the early return can end it within the test
                grant = await open_grant(h, timedelta(minutes=30))
                holder = psycopg.connect(dsn_as(h.database_dsn, grant.role), autocommit=True)
                assert holder.execute("SELECT count(*) >= 0 FROM telemetry.keystrokes").fetchone() == (True,)

                receipt = await h.act(EndBreakGlassInput(actor=ANALYST, grant_id="g1", reason="seen enough"))
                assert "ending" in receipt.message
                worker.kill()
                await worker.start()

                closed = (await wait_grant(h, "g1", "closed", timeout=120)).closed
                assert closed is not None and closed.verified and closed.ended_by == ANALYST.id
                assert closed.sessions_terminated == 1
                with pytest.raises(psycopg.OperationalError):
                    holder.execute("SELECT 1")
                holder.close()
                with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
                    psycopg.connect(dsn_as(h.database_dsn, grant.role))

                status = await h.status()
                actions = [e.action for e in status.timeline]
                assert actions.count("break_glass.ending") == 1 and actions.count("break_glass.closed") == 1
                child = h.client.get_workflow_handle(f"{pause_handle(h.client, h.program).id}/break-glass/{grant.role}")
                events = [e async for e in child.fetch_history_events()]
                closes = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                          and e.activity_task_scheduled_event_attributes.activity_type.name == "close_break_glass"]
                ends = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                        and e.workflow_execution_signaled_event_attributes.signal_name == "end"]
                assert len(closes) == 1 and len(ends) == 1
                await asyncio.wait_for(child.result(), timeout=60)
            finally:
                worker.stop()
            record_result("worker killed (SIGKILL)", "just after a holder's early return of a break-glass grant "
                          "was accepted", injected=1,
                          outcome="the grant closed once, ended by its holder: login off, its session ended, verified",
                          sessions_terminated=closed.sessions_terminated)
