"""The steps that stop harm never wait behind the steps that prove it, and the data stop is measured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from temporalio.testing import ActivityEnvironment

from activities.data_stop import DataStopActivities
from pausegate.models.data_stop import DataStopInput, describe
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.reference.fleet.settings import FaultSettings
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.faults.support import fleet_faults
from tests.support.harness import COMMANDER, Harness, HarnessFactory
from tests.support.polling import polled

# Longer than the test: the held request ends only when its step times out after the test lifted the hold, so the
# order of events, not the clock, shows what waited for what.
HOLD_MS = 600_000


def rows_after(h: Harness, at: datetime) -> int:
    with psycopg.connect(h.database_dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry.keystrokes WHERE captured_at > %(t)s)"
            " + (SELECT count(*) FROM telemetry.mouse_events WHERE captured_at > %(t)s)", {"t": at}
        ).fetchone()
    assert row is not None
    return int(row[0])


class TestUrgentQueue:
    async def test_a_second_pause_is_switched_off_and_halted_while_the_worker_is_held_up_sealing(
        self, make_harness: HarnessFactory
    ) -> None:
        faults = FaultSettings(latency_ms=1, jitter_ms=1, ops=["audit"], hold_before_ms=HOLD_MS)
        async with make_harness(agents=200, run_worker=False, faults=faults) as h:
            # The regular worker has one activity slot; the first pause's fleet-audit seal will hold it.
            worker = build_worker(h.client, h.connectors, task_queue=h.task_queue, max_concurrent_activities=1)
            async with worker, build_urgent_worker(h.client, h.connectors):
                await h.pause()
                await h.eventually(lambda: fleet_faults(h).injected["hold_before"] >= 1, timeout=30,
                                   what="the first pause's seal to be held by the fleet")
                # A second program of the same fleet, paused while the regular worker is busy.
                second = f"{h.program}-b"
                h.fleet_state.programs[second] = h.fleet_state._build(second)
                runbook = h.runbook.model_copy(update={"program": h.runbook.program.model_copy(
                    update={"id": second})})
                await start_pause(h.client, PauseRequest(program=second, reason="same leak", commander=COMMANDER,
                                                         runbook=runbook), task_queue=h.task_queue, tuning=h.tuning)
                # The first pause's seal is held until this test lets it go: the second pause's halt can only
                # be confirmed meanwhile if it never queued behind that seal.
                status = await polled(lambda: read_status(h.client, second), every=0.05,
                                      until=lambda s: s.containment.agents.confirmed,
                                      what="the second pause halted while the worker was held up sealing")
                agents = status.containment.agents
                assert agents.switch_off and agents.halted == agents.total == 200 and agents.switch_off_at
                fleet = h.fleet_state.program(second)
                assert fleet.switch.enabled is False and fleet.counters.switch_changes == 1
                # Meanwhile nothing that proves the pause ran for it: the one slot is still held.
                first = await h.status()
                assert "fleet-audit" in first.containment.evidence_pending
                assert status.containment.datasets_pending == ["telemetry"]
                assert status.containment.data_stop is None

                # Once the hold is over, both finish.
                fleet_faults(h).update(FaultSettings(latency_ms=1, jitter_ms=1))
                await h.wait_for_state(Phase.UNDER_REVIEW, timeout=90)
                done = await polled(lambda: read_status(h.client, second),
                                    until=lambda s: s.phase == Phase.UNDER_REVIEW, what="the second pause contained")
                assert done.containment.data_stop is not None and done.containment.data_stop.rows_after == 0


class TestDataStop:
    async def test_the_switch_off_moment_and_no_rows_after_it_are_measured(self, harness: Harness) -> None:
        h = harness
        await h.eventually(lambda: h.fleet_state.program(h.program).counters.ticks_written >= 2,
                           what="telemetry rows before the pause")
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL, timeout=60)
        stop, agents = status.containment.data_stop, status.containment.agents
        assert stop is not None and agents.switch_off_at is not None
        # The fleet's own record of when the switch went off.
        assert agents.switch_off_at == h.fleet_state.program(h.program).switch.changed_at == stop.switch_off_at
        assert stop.rows_after == 0 and stop.last_row_at is None
        assert stop.last_row_before is not None and stop.last_row_before <= stop.switch_off_at
        assert stop.checked_at >= stop.switch_off_at
        # Asked independently, later: still nothing after the switch.
        assert rows_after(h, stop.switch_off_at) == 0
        assert "no rows after the halt" in describe(stop, agents.switch_off_at)

    async def test_a_row_collected_after_the_switch_is_found_and_counted(self, harness: Harness) -> None:
        h = harness
        off = datetime.now(UTC) - timedelta(seconds=30)
        late = datetime.now(UTC)
        with psycopg.connect(h.database_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO telemetry.mouse_events (agent_id, employee, captured_at, x, y, button)"
                         " VALUES ('agent-00001', 'employee_0001', %s, 1, 2, 'left')", (late,))
        activities = DataStopActivities(lambda name: h.settings.postgres(name).dsn.get_secret_value())
        spec = h.runbook.datasets[0]
        writes = h.runbook.fleet.writes
        assert writes is not None
        stop = await ActivityEnvironment().run(
            activities.check_data_stop,
            DataStopInput(connection=spec.connection, schema_name=spec.schema_name, tables=list(writes.tables),
                          written_at=writes.written_at, switch_off_at=off),
        )
        assert stop.rows_after == rows_after(h, off) >= 1
        assert stop.last_row_at is not None and stop.last_row_at >= late - timedelta(microseconds=1)
        text = describe(stop, off)
        assert f"{stop.rows_after} rows after it" in text
