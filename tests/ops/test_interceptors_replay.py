"""The telemetry interceptors issue no command: every stored history replays with them installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

from pausegate.observability.worker_metrics import PauseMetricsInterceptor
from tests.support.encryption import TEST_CONVERTER, TEST_NAMESPACE
from workflows.pause import PauseWorkflow

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_stored_history_replays_with_the_metrics_and_tracing_interceptors(path: Path) -> None:
    id_file = path.with_suffix(".workflow-id")  # the watch's id is derived from the pause's
    workflow_id = id_file.read_text().strip() if id_file.exists() else f"pause/{path.stem}"
    history = WorkflowHistory.from_json(workflow_id, path.read_text())  # noqa: ASYNC240 - small file
    replayer = Replayer(workflows=[PauseWorkflow], data_converter=TEST_CONVERTER, namespace=TEST_NAMESPACE,
                        interceptors=[PauseMetricsInterceptor(), TracingInterceptor()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
