"""A dev server of its own with Temporal's limits lowered (``--dynamic-config-value``), and a reader of
what each run of a workflow left in history.

A production namespace may be configured below the defaults (history length and size, payload size)
and does limit the request rate, which the session's dev server does not: each limit variant starts a
server of its own so that what it lowers touches no other test.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from pausegate.temporal.client import temporal_cli
from tests.support.encryption import TEST_CONVERTER

# The keys as the server (1.32) registers them; a misspelt key is ignored by the server, silently, so the
# tests check that each limit took effect rather than trusting the spelling.
HISTORY_COUNT_SUGGEST = "limit.historyCount.suggestContinueAsNew"
HISTORY_COUNT_WARN = "limit.historyCount.warn"
HISTORY_COUNT_ERROR = "limit.historyCount.error"
HISTORY_SIZE_SUGGEST = "limit.historySize.suggestContinueAsNew"
HISTORY_SIZE_WARN = "limit.historySize.warn"
HISTORY_SIZE_ERROR = "limit.historySize.error"
BLOB_SIZE_WARN = "limit.blobSize.warn"
BLOB_SIZE_ERROR = "limit.blobSize.error"
NAMESPACE_RPS = "frontend.namespaceRPS"
NAMESPACE_BURST_RATIO = "frontend.namespaceBurstRatio"


@dataclass(frozen=True)
class LimitedServer:
    """The server's client, and where it publishes its metrics (Prometheus text)."""

    client: Client
    metrics_url: str

    async def refused_for_rate(self) -> int:
        """Requests of the ``default`` namespace the server refused as over its rate, by its own count.
        The server publishes its counters every second or so: read until two reads a second apart agree."""
        last = -1
        for _ in range(10):
            now = await self._refused_for_rate()
            if now == last:
                break
            last = now
            await asyncio.sleep(1.2)
        return last

    async def _refused_for_rate(self) -> int:
        async with httpx.AsyncClient() as http:
            text = (await http.get(self.metrics_url)).text
        total = 0.0
        for line in text.splitlines():
            if (line.startswith("service_errors_resource_exhausted{") and 'namespace="default"' in line
                    and 'resource_exhausted_cause="RpsLimit"' in line):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


@asynccontextmanager
async def limited_server(limits: Mapping[str, int | float]) -> AsyncIterator[LimitedServer]:
    """A fresh in-memory dev server with ``limits`` set; its client encrypts as the session's does."""
    metrics_port = free_port()
    extra: list[str] = ["--metrics-port", str(metrics_port)]
    for key, value in limits.items():
        extra += ["--dynamic-config-value", f"{key}={value}"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=TEST_CONVERTER, dev_server_log_level="error",
        dev_server_extra_args=extra,
    )
    try:
        yield LimitedServer(env.client, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        await env.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunHistory:
    """One run of a workflow: how it closed (or that it is open), and its history's length and size."""

    run_id: str
    status: str
    events: int
    size: int


async def run_histories(client: Client, workflow_id: str) -> list[RunHistory]:
    """Every run of ``workflow_id``, oldest first, read from the server."""
    runs: list[tuple[datetime, RunHistory]] = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        status = execution.status.name if execution.status is not None else "?"
        runs.append((execution.start_time, RunHistory(
            run_id=execution.run_id, status=status,
            events=len(history.events), size=sum(e.ByteSize() for e in history.events),
        )))
    return [r for _, r in sorted(runs, key=lambda pair: pair[0])]
