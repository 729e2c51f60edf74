"""A scheduled drill: the schedule's occurrence (under the schedule's id with its time appended) starts
the drill at the program's fixed drill id, so a real pause pulled during it finds it there, tells it to
stand aside, and it restores what lies outside the pause."""

from __future__ import annotations

from datetime import timedelta

from pausegate.models.drill import DrillOutcome, DrillPhase, DrillRequest
from pausegate.models.phase import Phase
from pausegate.temporal.drills import drill_handle, drill_id, schedule_drills
from tests.drill.support import catalog, drill, drill_runbook, wait_phase
from tests.support.harness import COMMANDER, Harness, HarnessFactory
from tests.support.polling import polled
from workflows.drill_schedule import SKIPPED, STARTED

LONG_HOLD = timedelta(seconds=120)
YEARLY = "0 0 1 1 *"
"""A schedule that does not fire during a test: the test triggers it."""


async def occurrence(h: Harness, sid: str, *, running: bool = True) -> str:
    """The id of the schedule's one (running) occurrence, once the server lists it."""
    query = f"WorkflowId STARTS_WITH '{sid}'" + (" AND ExecutionStatus = 'Running'" if running else "")

    async def listed() -> list[str]:
        return [w.id async for w in h.client.list_workflows(query)]
    return (await polled(listed, what="the schedule's occurrence listed"))[0]


class TestScheduledDrillAndARealPause:
    async def test_a_pause_pulled_during_a_scheduled_drill_makes_it_stand_aside_and_restore(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=LONG_HOLD, schedule=YEARLY)
            before = await catalog(h, runbook)
            sid = await schedule_drills(h.client, DrillRequest(program=h.program, commander=COMMANDER,
                                                               runbook=runbook),
                                        task_queue=h.task_queue, tuning=h.tuning)
            schedule = h.client.get_schedule_handle(sid)
            try:
                await schedule.trigger()
                launched = await occurrence(h, sid)
                assert launched != sid and launched.startswith(sid)  # the schedule appends its time
                holding = await wait_phase(h, DrillPhase.HOLDING)
                # the drill itself runs at the program's fixed id, where a pause's start looks
                assert holding.drill_id == drill_id(h.client, h.program)
                await h.pause()
                final = await drill_handle(h.client, h.program).result()
                ended = await h.client.get_workflow_handle(launched).result()
                status = await h.wait_for_state(Phase.UNDER_REVIEW, timeout=60)
                after = await catalog(h, runbook)
            finally:
                await schedule.delete()

        # told by the pause's start while it held (its own check before resuming agents says "is open")
        assert final.outcome == DrillOutcome.PREEMPTED and final.outcome_reason == "a pause of the program began"
        assert any(e.action == "drill.preempted" for e in final.timeline)
        assert final.phase == DrillPhase.RESTORED and final.agents_left_to_pause
        assert final.restore is not None and final.restore.equal and after == before
        assert status.containment.agents.confirmed and status.containment.access_revoked
        assert ended == STARTED

    async def test_an_occurrence_while_a_commanders_drill_runs_is_skipped_and_starts_nothing(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=LONG_HOLD, schedule=YEARLY)
            running = await drill(h, runbook, await_prober=False)
            await wait_phase(h, DrillPhase.HOLDING)
            sid = await schedule_drills(h.client, DrillRequest(program=h.program, commander=COMMANDER,
                                                               runbook=runbook),
                                        task_queue=h.task_queue, tuning=h.tuning)
            schedule = h.client.get_schedule_handle(sid)
            try:
                await schedule.trigger()
                launched = await occurrence(h, sid, running=False)
                ended = await h.client.get_workflow_handle(launched).result()
                # still the commander's drill, holding: the occurrence started no second one
                still = await drill_handle(h.client, h.program).describe()
                assert still.run_id == running.result_run_id
            finally:
                await schedule.delete()
                await running.cancel()
            final = await running.result()

        assert ended == SKIPPED
        assert final.outcome == DrillOutcome.ABORTED and final.restore is not None and final.restore.equal
