"""However a drill's practice ends, the canary is restored to its snapshot: a stop condition the prober
saw, a failed step, the commander's abort or cancellation, a real pause of the program. And a drill is
refused where it must not run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from temporalio.client import ScheduleActionStartWorkflow, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from pausegate.errors import ActionRefused
from pausegate.models.drill import DrillInput, DrillOutcome, DrillPhase, DrillRequest, StopInput
from pausegate.models.fleet import AgentState, BatchRequest
from pausegate.models.phase import Phase
from pausegate.policy.drill import PAUSE_OPEN
from pausegate.temporal.drills import schedule_drills, start_drill, stop_drill
from tests.drill.support import agent_states, catalog, drill, drill_runbook, probing, reads, wait_phase
from tests.support.harness import ANALYST, COMMANDER, HarnessFactory
from workflows.drill import DrillWorkflow

LONG_HOLD = timedelta(seconds=120)


class TestStopCondition:
    async def test_a_canary_owned_by_the_analysts_group_stops_the_drill_when_a_watched_reader_is_refused(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            # Mis-scoped on purpose: the canary table's owner is the group the real readers read through, so
            # revoking the canary takes the real readers' membership with it.
            with psycopg.connect(h.database_dsn, autocommit=True) as conn:
                conn.execute("CREATE SCHEMA canary_mis; CREATE TABLE canary_mis.probe (id int); "
                             "ALTER TABLE canary_mis.probe OWNER TO telemetry_analysts; "
                             "GRANT USAGE ON SCHEMA canary_mis TO telemetry_canary_reader; "
                             "GRANT SELECT ON canary_mis.probe TO telemetry_canary_reader")
            runbook = drill_runbook(h, schema_name="canary_mis", hold=LONG_HOLD)
            before = await catalog(h, runbook)
            assert reads(h, "ml_trainer", "telemetry.keystrokes")
            async with probing(h, runbook, tmp_path / "probes.jsonl") as prober:
                final = await (await drill(h, runbook)).result()
                figures = await prober

        assert final.outcome == DrillOutcome.STOPPED and final.phase == DrillPhase.RESTORED
        assert "ml_trainer" in final.outcome_reason
        assert any(c.startswith("reader ml_trainer") for c in figures.outside_changes)
        assert final.restore is not None and final.restore.equal
        assert await catalog(h, runbook) == before
        assert reads(h, "ml_trainer", "telemetry.keystrokes"), "the real reader reads again"


    async def test_a_non_canary_agent_halted_during_the_drill_stops_it(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=LONG_HOLD)
            before = await catalog(h, runbook)
            async with probing(h, runbook, tmp_path / "probes.jsonl") as prober:
                handle = await drill(h, runbook)
                await wait_phase(h, DrillPhase.HOLDING)
                # something outside the canary changes while the drill holds: the prober must not let it go on
                h.fleet_state.program(h.program).halt(
                    BatchRequest(agent_ids=["agent-00017"], incident_id="elsewhere", idempotency_key="elsewhere-1"),
                    actor="someone")
                final = await handle.result()
                figures = await prober
            after = await catalog(h, runbook)

        assert final.outcome == DrillOutcome.STOPPED and "agent-00017" in final.outcome_reason
        assert figures.outside_changes == ["agent agent-00017 halted"]
        assert final.restore is not None and final.restore.equal and after == before


class TestFailedStep:
    async def test_a_canary_agent_the_fleet_does_not_know_fails_the_drill_and_the_rest_is_restored(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, agents=["agent-00001", "agent-00002", "agent-99999"])
            before = await catalog(h, runbook)
            final = await (await drill(h, runbook, await_prober=False)).result()
            states = agent_states(h)
            after = await catalog(h, runbook)

        assert final.outcome == DrillOutcome.FAILED and "agent-99999" in final.outcome_reason
        assert final.phase == DrillPhase.RESTORED and final.restore is not None and final.restore.equal
        assert after == before
        assert states["agent-00001"] == AgentState.COLLECTING and states["agent-00002"] == AgentState.COLLECTING


class TestAgentsHaltedBefore:
    async def test_a_canary_agent_halted_before_the_drill_is_left_halted_by_the_restore(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            h.fleet_state.program(h.program).halt(
                BatchRequest(agent_ids=["agent-00002"], incident_id="earlier", idempotency_key="earlier-1"),
                actor="someone")
            final = await (await drill(h, drill_runbook(h), await_prober=False)).result()
            states = agent_states(h)

        assert final.outcome == DrillOutcome.COMPLETED and final.agents_halted_before == ["agent-00002"]
        assert states["agent-00002"] == AgentState.HALTED
        assert states["agent-00001"] == states["agent-00003"] == AgentState.COLLECTING


class TestAbort:
    async def test_the_commanders_abort_while_holding_restores_at_once(self, make_harness: HarnessFactory) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=LONG_HOLD)
            before = await catalog(h, runbook)
            handle = await drill(h, runbook, await_prober=False)
            await wait_phase(h, DrillPhase.HOLDING)
            assert not reads(h, "telemetry_canary_reader", "telemetry_canary.keystrokes")
            assert await stop_drill(h.client, h.program, StopInput(outcome=DrillOutcome.ABORTED, by=COMMANDER.id,
                                                                   reason="practice over"))
            final = await handle.result()
            assert final.outcome == DrillOutcome.ABORTED and final.restore is not None and final.restore.equal
            assert await catalog(h, runbook) == before
            states = agent_states(h)
            assert all(states[a] == AgentState.COLLECTING for a in ("agent-00001", "agent-00002", "agent-00003"))

    async def test_a_cancelled_drill_still_restores(self, make_harness: HarnessFactory) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=LONG_HOLD)
            before = await catalog(h, runbook)
            handle = await drill(h, runbook, await_prober=False)
            await wait_phase(h, DrillPhase.HOLDING)
            await handle.cancel()
            final = await handle.result()
            assert final.outcome == DrillOutcome.ABORTED and final.phase == DrillPhase.RESTORED
            assert await catalog(h, runbook) == before
            assert reads(h, "telemetry_canary_reader", "telemetry_canary.keystrokes")


class TestKeptApart:
    async def test_a_drill_is_refused_while_a_pause_is_open_and_to_anyone_but_a_commander(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h)
            with pytest.raises(ActionRefused) as refused:
                await start_drill(h.client, DrillRequest(program=h.program, commander=ANALYST, runbook=runbook),
                                  task_queue=h.task_queue)
            assert refused.value.code == "wrong_role"
            await h.pause()
            with pytest.raises(ActionRefused) as refused:
                await drill(h, runbook)
            assert refused.value.code == PAUSE_OPEN

    async def test_a_drill_started_past_the_client_by_a_non_commander_contains_nothing(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h)
            before = await catalog(h, runbook)
            handle = await h.client.start_workflow(
                DrillWorkflow.run, DrillInput(request=DrillRequest(program=h.program, commander=ANALYST,
                                                                   runbook=runbook), pause_checked=True),
                id=f"drill-direct-{h.program}", task_queue=h.task_queue)
            with pytest.raises(WorkflowFailureError) as failed:
                await handle.result()
            assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == "wrong_role"
            assert await catalog(h, runbook) == before
            assert all(s == AgentState.COLLECTING for s in agent_states(h).values())

    async def test_a_pause_pulled_during_a_drill_starts_at_once_and_the_drill_leaves_it_the_agents(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=LONG_HOLD)
            before = await catalog(h, runbook)
            handle = await drill(h, runbook, await_prober=False)
            await wait_phase(h, DrillPhase.HOLDING)
            await h.pause()
            final = await handle.result()
            status = await h.wait_for_state(Phase.UNDER_REVIEW, timeout=60)
            after = await catalog(h, runbook)

        assert final.outcome == DrillOutcome.PREEMPTED and final.agents_left_to_pause
        # the canary's tables lie outside the pause's datasets: restored; its agents lie inside: left halted
        assert final.restore is not None and final.restore.equal and after == before
        assert status.containment.agents.confirmed and status.containment.access_revoked


class TestScheduled:
    async def test_drills_are_scheduled_from_the_runbooks_cron_by_a_commander_only(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, schedule="0 3 * * 1")
            request = DrillRequest(program=h.program, commander=COMMANDER, runbook=runbook)
            with pytest.raises(ActionRefused) as refused:
                await schedule_drills(h.client, request.model_copy(update={"commander": ANALYST}),
                                      task_queue=h.task_queue)
            assert refused.value.code == "wrong_role"
            with pytest.raises(ActionRefused) as refused:
                await schedule_drills(h.client, request.model_copy(update={"runbook": drill_runbook(h)}),
                                      task_queue=h.task_queue)
            assert refused.value.code == "no_schedule"
            sid = await schedule_drills(h.client, request, task_queue=h.task_queue)
            handle = h.client.get_schedule_handle(sid)
            try:
                described = await handle.describe()
                # the server keeps the cron expression as calendars: every next drill is a Monday at 03:00 UTC
                upcoming = described.info.next_action_times
                assert upcoming and all((t.weekday(), t.hour, t.minute) == (0, 3, 0) for t in upcoming)
                action = described.schedule.action
                # each occurrence starts the drill at the program's fixed id (workflows.drill_schedule)
                assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "ScheduledDrillWorkflow"
                assert action.id == sid
                # scheduling again replaces the schedule rather than adding a second one
                assert await schedule_drills(h.client, request, task_queue=h.task_queue) == sid
            finally:
                await handle.delete()
