"""The telemetry interceptors issue no command: every stored history of every release replays with them
installed."""

from __future__ import annotations

import pytest
from temporalio.contrib.opentelemetry import TracingInterceptor

from pausegate.observability.worker_metrics import PauseMetricsInterceptor
from tests.support.histories import StoredHistory, replay, stored_histories

HISTORIES = stored_histories()


@pytest.mark.parametrize("stored", HISTORIES, ids=[s.label for s in HISTORIES])
async def test_a_stored_history_replays_with_the_metrics_and_tracing_interceptors(stored: StoredHistory) -> None:
    await replay(stored.load(), interceptors=[PauseMetricsInterceptor(), TracingInterceptor()])
