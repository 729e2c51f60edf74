"""A watch whose check cannot run fails closed: the runbook's number of failures in a row is drift (the
switch is pulled again), and a period that ends with no check that ran does not end as "ended"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql

from pausegate.config import PostgresConnection
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.runbook import DatasetSpec, Runbook, WatchSpec
from pausegate.models.watch import WatchInput, WatchState
from pausegate.temporal.pauses import pause_handle
from tests.support.fault_report import record_result
from tests.support.harness import Harness, HarnessFactory
from workflows.watch import WatchWorkflow, watch_actor
from workflows.watch_ids import watch_workflow_id

# Nothing listens on port 1: every connection to it is refused at once.
REFUSING_DSN = "postgresql://hr@127.0.0.1:1/hr?connect_timeout=2"
CONSENTED_ONLY = ResumePlan(agents=AgentSelection(mode="consented"))


@pytest_asyncio.fixture
async def harness10(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with make_harness(agents=10) as h:
        yield h


def consent_elsewhere(h: Harness, spec: WatchSpec) -> Runbook:
    """The example's runbook with consent read from HR's database, whose server refuses connections."""
    h.settings.connections["consent-db"] = PostgresConnection(dsn=REFUSING_DSN)  # type: ignore[arg-type]
    runbook = h.runbook
    assert runbook.consent is not None
    hr = DatasetSpec(name="hr", connection="consent-db", schema="hr", tables=["consent"])
    return runbook.model_copy(update={
        "datasets": [*runbook.datasets, hr],
        "consent": runbook.consent.model_copy(update={"dataset": "hr"}),
        "watch": spec,
    })


async def watch(h: Harness, runbook: Runbook) -> WatchState:
    handle = await h.client.start_workflow(
        WatchWorkflow.run,
        WatchInput(runbook=runbook, plan=CONSENTED_ONLY, pause_id="pause/none", pause_key="none/none",
                   switched_on_at=datetime.now(UTC), tuning=h.tuning),
        id=watch_workflow_id(pause_handle(h.client, h.program).id), task_queue=h.task_queue,
    )
    # A guard, not a measure: a watch that keeps passing failed checks would otherwise run for its period.
    return WatchState.model_validate(await asyncio.wait_for(handle.result(), timeout=300))


@pytest.mark.slow
class TestTheWatchFailsClosed:
    async def test_checks_that_cannot_run_in_a_row_pull_the_switch_again(self, harness10: Harness) -> None:
        h = harness10
        runbook = consent_elsewhere(h, WatchSpec(period=timedelta(minutes=30), interval=timedelta(seconds=1),
                                                 failed_checks=2))
        final = await watch(h, runbook)

        assert final.status == "drifted"
        assert final.checks == 0 and final.failed_checks == 2
        assert final.drift is not None and "2 checks in a row could not run" in final.drift
        assert final.repaused is not None
        # A new pause, the watch its commander, with the failures as its reason.
        status = await h.wait_for(lambda s: s.commander == watch_actor(h.program) and s.phase != Phase.RESUMED,
                                  what="the watch's pause")
        assert "checks in a row could not run" in status.reason
        messages = [m.text for m in h.chat.sink.received("security")]
        assert sum("could not check the plan's conditions" in m for m in messages) >= 2
        record_result("the watch's consent source refuses connections", "watch after a resume, 2 failures allowed",
                      injected=final.failed_checks, outcome="drift: the switch pulled again by the watch")

    async def test_a_period_without_one_check_that_ran_does_not_end_as_ended(self, harness10: Harness) -> None:
        h = harness10
        # A consent table that is gone: every check fails at once, fewer times than would count as drift.
        with psycopg.connect(h.database_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER TABLE telemetry.consent RENAME TO consent_gone"))
        spec = WatchSpec(period=timedelta(seconds=1), interval=timedelta(seconds=1), failed_checks=100)
        final = await watch(h, h.runbook.model_copy(update={"watch": spec}))

        assert final.status == "unchecked"
        assert final.checks == 0 and final.failed_checks >= 1
        assert final.drift is None and final.repaused is None
        assert any("ended without one check" in m.text for m in h.chat.sink.received("security"))
        record_result("the watch's consent table is gone", "a watch period shorter than the failures allowed",
                      injected=final.failed_checks, outcome="the watch ends unchecked, not ended; people told")
