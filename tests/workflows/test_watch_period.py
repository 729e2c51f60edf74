"""The watch runs for its period and ends, continuing as new on the way (days pass in seconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pausegate.models.plan import ResumePlan
from pausegate.models.runbook import WatchSpec
from pausegate.models.state import Tuning
from pausegate.models.watch import WatchInput, WatchState
from pausegate.temporal.client import temporal_cli
from pausegate.temporal.pauses import pause_handle
from tests.support.harness import pause_harness
from workflows.watch import WatchWorkflow
from workflows.watch_ids import watch_workflow_id


@pytest_asyncio.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=temporal_cli(),
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.mark.slow
class TestWatchPeriod:
    async def test_the_watch_checks_every_interval_for_its_period_then_ends(
        self, skipping_env: WorkflowEnvironment, postgres: tuple[str, Path], tmp_path: Path
    ) -> None:
        dsn, pglog = postgres
        async with pause_harness(skipping_env.client, dsn, pglog, tmp_path, agents=10) as h:
            spec = WatchSpec(period=timedelta(days=5), interval=timedelta(hours=6))
            runbook = h.runbook.model_copy(update={"watch": spec})
            # A small history budget, so five days of checks take several runs.
            tuning = h.tuning.model_copy(update={"continue_as_new_after_events": 60})
            assert isinstance(tuning, Tuning)
            handle = await h.client.start_workflow(
                WatchWorkflow.run,
                WatchInput(runbook=runbook, plan=ResumePlan(), pause_id="pause/none", pause_key="none/none",
                           switched_on_at=datetime.now(UTC), tuning=tuning),
                id=watch_workflow_id(pause_handle(h.client, h.program).id), task_queue=h.task_queue,
            )
            final = WatchState.model_validate(await handle.result())
            assert final.status == "ended"
            assert final.ends_at - final.started_at == spec.period
            # A check at the start and on every interval after it (at most 21: a skip of time while a check
            # runs may jump a grid point), the last one at the end of the period.
            assert 2 <= final.checks <= spec.period / spec.interval + 1
            assert final.last_check_at is not None and final.last_check_at >= final.ends_at
            assert final.run_count > 1, final.run_count
            assert final.last_check is not None and final.last_check.holds
