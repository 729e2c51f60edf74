"""Kill -9 the worker at each activity boundary of containment and of resume, then start a new one.

At every boundary the pause must end in the right state with each effect applied once, counted where
it happens: the program switch and per-agent commands at the reference fleet, REVOKE statements in
PostgreSQL's own statement log, sealed bundles in the evidence timeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType

from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState, Tuning
from pausegate.models.updates import ApproveInput, ProposePlanInput
from pausegate.reference.fleet.settings import FaultSettings
from tests.faults.support import (
    WorkerProcess,
    database_of,
    fleet_effects,
    fleet_faults,
    settled_pg_statements,
    slow_attempts,
    until,
)
from tests.support.fault_report import record_result
from tests.support.harness import CISO, COMMANDER, CPO, Harness, HarnessFactory
from tests.workflows.test_lifecycle import NARROWED_PLAN, can_read, complete_review

CRASH_TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=1.5,
                      workflow_task_timeout_seconds=2.0)
QUIET = FaultSettings(latency_ms=1.0, jitter_ms=1.0)
HOLD = 600_000.0


def held(op: str, *, after: bool = False) -> FaultSettings:
    """The fleet holds ``op`` (before applying it, or after) until the client goes away."""
    return QUIET.model_copy(update={"ops": [op], "hold_after_ms" if after else "hold_before_ms": HOLD})

# How soon the replacement takes over is a figure of bench/bench_recovery.py, not a limit here: on a
# shared machine a wall-clock limit fails for reasons that are not the product's. What the test holds
# instead is how the dead worker's work came back: every attempt it lost was given up by its heartbeat
# (not by a start-to-close timeout of minutes) and repeated once, and no workflow task waited for more
# than CRASH_TUNING's task timeout. The defaults this guards against (no heartbeats, 10 s sticky and
# task timeouts) show up there as a start-to-close timeout or a longer task timeout.
AGENTS = 200
WAIT = 60.0  # only so that a pause that never recovers fails instead of hanging


@dataclass(frozen=True)
class Boundary:
    """Where the first worker dies: which call it is in, and how the test knows it got there."""

    id: str
    phase: str  # "contain" or "resume"
    fleet: FaultSettings | None = None
    hold: list[str] = field(default_factory=list)
    description: str = ""

    def reached(self, h: Harness, w: WorkerProcess) -> Callable[[], bool]:
        faults = fleet_faults(h)
        if self.fleet is not None and self.fleet.hold_before_ms:
            return lambda: faults.injected["hold_before"] >= 1
        if self.fleet is not None and self.fleet.hold_after_ms:
            return lambda: faults.injected["hold_after"] >= 1
        point = self.hold[0]
        return lambda: w.marker(point)


BOUNDARIES = [
    Boundary("halt-before-switch", "contain", fleet=held("switch"),
             description="the fleet received the switch-off and had not applied it"),
    Boundary("halt-after-switch", "contain", fleet=held("switch", after=True),
             description="the fleet applied the switch-off; its answer was not yet sent"),
    Boundary("revoke-before", "contain", hold=["before:revoke"],
             description="scope recorded, REVOKE not yet run"),
    Boundary("revoke-after", "contain", hold=["after:revoke"],
             description="REVOKE committed, result not yet returned"),
    Boundary("seal-before", "contain", fleet=held("audit"),
             description="sealing the fleet's audit trail, export requested"),
    Boundary("restore-before", "resume", hold=["before:restore"],
             description="quorum reached, GRANTs of the plan not yet run"),
    Boundary("restore-after", "resume", hold=["after:restore"],
             description="GRANTs of the plan committed, result not yet returned"),
    Boundary("resume-before-switch", "resume", fleet=held("switch"),
             description="the fleet received the switch-on and had not applied it"),
    Boundary("resume-after-switch", "resume", fleet=held("switch", after=True),
             description="the fleet applied the switch-on; its answer was not yet sent"),
]


async def approve(h: Harness) -> None:
    await complete_review(h)
    await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
    status = await h.wait_for_state(Phase.AWAITING_APPROVAL, timeout=30)
    assert status.approval_digest is not None
    await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
    await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))


def count(status: PauseState, action: str) -> int:
    return sum(1 for e in status.timeline if e.action == action)


async def how_work_came_back(handle: Any) -> tuple[list[str], list[str]]:
    """(activities retried after the kill, as ``type: attempt n after <timeout>``; what went wrong with
    the retries: an attempt given up other than by its heartbeat, a third attempt, a workflow task timeout
    longer than CRASH_TUNING's)."""
    history = await handle.fetch_history()
    task_timeout = timedelta(seconds=CRASH_TUNING.workflow_task_timeout_seconds)
    scheduled: dict[int, str] = {}
    retried: list[str] = []
    wrong: list[str] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            configured = event.workflow_execution_started_event_attributes.workflow_task_timeout.ToTimedelta()
            if configured > task_timeout:
                wrong.append(f"workflow task timeout {configured}")
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if attrs.attempt <= 1:
                continue
            name = scheduled.get(attrs.scheduled_event_id, "?")
            timeout = attrs.last_failure.timeout_failure_info.timeout_type
            retried.append(f"{name}: attempt {attrs.attempt} after {TimeoutType.Name(timeout)}")
            if attrs.attempt > 2 or timeout != TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
                wrong.append(retried[-1])
    return retried, wrong


@pytest.mark.slow
@pytest.mark.parametrize("boundary", BOUNDARIES, ids=[b.id for b in BOUNDARIES])
async def test_a_worker_killed_at_a_boundary_loses_nothing_and_repeats_nothing(
    boundary: Boundary, make_harness: HarnessFactory, temporal_address: str, pglog: Path, tmp_path: Path
) -> None:
    async with make_harness(agents=AGENTS, tuning=CRASH_TUNING, run_worker=False) as h:
        spec = h.runbook.datasets[0]
        planned_revokes = sum(1 for _, text in await PostgresAccess(h.database_dsn).planned_revoke(spec)
                              if text.upper().startswith("REVOKE"))
        assert planned_revokes > 0
        database = database_of(h)
        seeded = await settled_pg_statements(pglog, database)
        w = WorkerProcess(h, temporal_address, tmp_path / "worker")
        try:
            contain_hold = boundary.hold if boundary.phase == "contain" else []
            if boundary.phase == "contain" and boundary.fleet is not None:
                fleet_faults(h).update(boundary.fleet)
            await w.start(hold=boundary.hold if boundary.phase == "resume" else contain_hold)
            handle, _ = await h.pause()

            recovery: float | None = None  # observed for the fault report; bench_recovery.py judges it
            if boundary.phase == "contain":
                await until(boundary.reached(h, w), timeout=30, what=f"the worker to reach {boundary.id}")
                w.kill()
                fleet_faults(h).update(QUIET)
                up = await w.start()
                status = await h.wait_for(lambda s: s.containment.contained_at is not None, timeout=WAIT,
                                          what="containment after the replacement worker started")
                assert status.containment.contained_at is not None
                recovery = status.containment.contained_at.timestamp() - up
            status = await h.wait_for_state(Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL, timeout=30)

            # Containment: once and complete, counted at the targets.
            fleet = fleet_effects(h)
            assert fleet.switch_changes == 1, "the switch-off was applied more than once"
            assert fleet.collecting == 0 and fleet.halted == AGENTS
            assert fleet.max_halts_per_agent <= 1
            contained_pg = await settled_pg_statements(pglog, database)
            revokes = contained_pg["REVOKE"] - seeded["REVOKE"]
            assert revokes == planned_revokes, f"{revokes} REVOKE statements for {planned_revokes} planned"
            assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
            assert status.containment.agents.confirmed and status.containment.access_revoked
            keys = [(e.source, e.window_start) for e in status.containment.evidence]
            assert len(keys) == 4 and len(set(keys)) == 4, f"evidence sealed {keys}"
            assert count(status, "containment.evidence.sealed") == 4
            assert count(status, "containment.dataset.revoked") == 1
            assert count(status, "containment.agents.halted") == 1

            if boundary.phase == "resume" and boundary.fleet is not None:
                fleet_faults(h).update(boundary.fleet)
            await approve(h)
            if boundary.phase == "resume":
                await until(boundary.reached(h, w), timeout=30, what=f"the worker to reach {boundary.id}")
                w.kill()
                fleet_faults(h).update(QUIET)
                up = await w.start()
                await h.wait_for_state(Phase.RESUMED, timeout=WAIT)
                # Observed, not read from the timeline: entries carry the time of the workflow task
                # that recorded them, which a replay on the new worker does not move.
                recovery = time.time() - up
            final = await handle.result()

            # Resume: once and exactly the plan.
            assert final.phase == Phase.RESUMED and final.report is not None
            fleet = fleet_effects(h)
            assert fleet.switch_changes == 2, "the switch-on was applied more than once"
            assert fleet.collecting == AGENTS
            assert fleet.max_resumes_per_agent <= 1
            trainer = h.dsn_as("ml_trainer")
            assert can_read(trainer, "keystrokes", "key_code") and not can_read(trainer, "keystrokes", "typed_content")
            assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
            resumed_pg = await settled_pg_statements(pglog, database)
            assert resumed_pg["REVOKE"] == contained_pg["REVOKE"], "resuming revoked something"
            assert count(final, "resume.grants") == 1 and count(final, "resume.agents") == 1
            assert count(final, "report.written") == 1
            assert count(final, "containment.evidence.sealed") == 4

            assert recovery is not None
            retried, wrong = await how_work_came_back(handle)
            timing = f"done {recovery:.1f}s after the replacement started"
            # the killed worker's work came back through its heartbeats, once each
            assert not wrong, f"retried: {retried}; timed-out attempts: {await slow_attempts(handle)}"
            record_result(
                "worker killed (kill -9)", f"{boundary.phase}: {boundary.id}", injected=1,
                outcome=f"{final.phase.value}; switch applied {fleet.switch_changes}x (off, on), "
                        f"REVOKE {revokes}/{planned_revokes} planned, 4 bundles sealed once; {boundary.phase} {timing}",
                recovery_s=round(recovery, 2), grants_run=resumed_pg["GRANT"] - contained_pg["GRANT"],
                slow_attempts=await slow_attempts(handle) if recovery > 5.0 else [],
            )
        finally:
            w.kill()
