"""The API's ``/metrics``: the open pauses as they are now, and the API's own refusals.

The API uses ``prometheus_client`` (not the SDK's meter): what it reports is read at scrape time
(the status of every open pause, from Temporal) or counted in the API process (refusals), neither of
which is workflow code, and it is served on the API's own port under ``/metrics``. Each app has its
own registry, so several apps in one process (tests) do not share counters.

Gauges carry no program label: anyone who can reach ``/metrics`` learns how many pauses are in which
state and for how long, not which programs (the authenticated status says that).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from temporalio.client import Client
from temporalio.service import RPCError

from pausegate.logging import get_logger
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from workflows.pause import PauseWorkflow

log = get_logger("pausegate.observability.api_metrics")

OPEN_PAUSES_QUERY = f"WorkflowType = '{PauseWorkflow.__name__}' AND ExecutionStatus = 'Running'"
# A pause that does not answer within this (no worker for it, a stuck task) is counted unreadable; it must
# not hold up the scrape, which a monitoring system times out after a few seconds.
QUERY_TIMEOUT = timedelta(seconds=3)


def open_pauses_query(task_queue: str | None) -> str:
    """The visibility query for this deployment's open pauses: its task queue's, when it names one a query
    can quote (configuration, not people's text: a name with a quote is simply not filtered on)."""
    if task_queue and "'" not in task_queue and "\\" not in task_queue:
        return f"{OPEN_PAUSES_QUERY} AND TaskQueue = '{task_queue}'"
    return OPEN_PAUSES_QUERY


MAX_PAUSES_READ = 1000
QUERY_CONCURRENCY = 16
MIN_REFRESH_SECONDS = 5.0  # Prometheus scrapes every 15-60 s
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class PausesSnapshot:
    """The open pauses' status at one moment, and how many could not be read."""

    taken_at: float = 0.0
    statuses: list[PauseState] = field(default_factory=list)
    unreadable: int = 0
    error: str | None = None


def _since(status: PauseState, now: datetime) -> float:
    """Seconds since the pause entered its current phase (its last ``state.*`` timeline entry)."""
    for entry in reversed(status.timeline):
        if entry.action.startswith("state."):
            return max((now - entry.at).total_seconds(), 0.0)
    return max((now - status.started_at).total_seconds(), 0.0)


class PausesCollector(Collector):
    """Gauges computed from the last snapshot of the open pauses."""

    def __init__(self) -> None:
        self.snapshot = PausesSnapshot()

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        now = datetime.now(UTC)
        by_state = GaugeMetricFamily("pausegate_pauses", "Open pauses by state.", labels=["state"])
        oldest = GaugeMetricFamily("pausegate_pause_oldest_in_state_seconds",
                                   "How long the open pause longest in each state has been in it (a pause "
                                   "stuck in CONTAINING shows here).", labels=["state"])
        counts = dict.fromkeys((p.value for p in Phase), 0)
        longest: dict[str, float] = {}
        for s in snap.statuses:
            counts[s.phase.value] = counts.get(s.phase.value, 0) + 1
            longest[s.phase.value] = max(longest.get(s.phase.value, 0.0), _since(s, now))
        for state, n in counts.items():
            by_state.add_metric([state], n)
        for state, seconds in longest.items():
            oldest.add_metric([state], seconds)
        yield by_state
        yield oldest

        agents = [s.containment.agents for s in snap.statuses]
        yield GaugeMetricFamily("pausegate_open_pause_halts_confirmed",
                                "Agents confirmed halted, summed over open pauses.", sum(a.halted for a in agents))
        yield GaugeMetricFamily("pausegate_open_pause_halts_unconfirmed",
                                "Agents not yet confirmed halted (and not waived), summed over open pauses.",
                                sum(0 if a.confirmed else a.unconfirmed for a in agents))
        durations = [(c.contained_at - c.started_at).total_seconds() for c in (s.containment for s in snap.statuses)
                     if c.contained_at is not None and c.started_at is not None]
        contain = GaugeMetricFamily("pausegate_open_pause_time_to_contain_seconds_max",
                                    "The longest time to contain among open pauses that are contained.")
        if durations:
            contain.add_metric([], max(durations))
        yield contain
        yield GaugeMetricFamily("pausegate_open_pause_evidence_sealed_bytes",
                                "Bytes of audit evidence sealed, summed over open pauses.",
                                sum(e.bundle.size_bytes for s in snap.statuses for e in s.containment.evidence))
        yield GaugeMetricFamily("pausegate_pauses_unreadable",
                                "Open pauses whose status could not be read at the last scrape.", snap.unreadable)
        yield GaugeMetricFamily("pausegate_pauses_read_failed",
                                "1 when the last scrape could not list the open pauses (Temporal unreachable).",
                                1 if snap.error else 0)


class ApiMetrics:
    """The API's registry: refusals counted as they happen, open pauses read at each scrape."""

    def __init__(self, client: Client | None, *, min_interval: float = MIN_REFRESH_SECONDS,
                 task_queue: str | None = None) -> None:
        self._client = client
        self._query = open_pauses_query(task_queue)
        self.min_interval = min_interval
        self.registry = CollectorRegistry(auto_describe=True)
        self.refusals = Counter("pausegate_refusals", "Actions the API refused, by action and where the "
                                "refusal was recorded (timeline or refusal log).", ["action", "recorded_in"],
                                registry=self.registry)
        self.pauses = PausesCollector()
        self.registry.register(self.pauses)
        self._refresh = asyncio.Lock()

    def count_refusal(self, action: str, recorded_in: str) -> None:
        # Actions are route names (bounded); a longer one is cut, never a label explosion.
        self.refusals.labels(action=action[:60], recorded_in=recorded_in).inc()

    async def refresh(self) -> None:
        """Read every open pause's status (at most ``MAX_PAUSES_READ``). Scrapes that arrive while a read
        is under way, or within ``min_interval`` of the last one, get its result: ``/metrics`` needs no
        token, and a flood of requests must not become a flood of queries to every pause."""
        asked_at = time.monotonic()
        async with self._refresh:
            client, taken_at = self._client, self.pauses.snapshot.taken_at
            if client is None or taken_at >= asked_at or (taken_at and asked_at - taken_at < self.min_interval):
                return
            snapshot = PausesSnapshot(taken_at=time.monotonic())
            try:
                # Workflow ids are keyed digests of program names (pausegate.temporal.ids): read each by its id.
                pause_ids = [w.id async for w in client.list_workflows(self._query, limit=MAX_PAUSES_READ)]
            except RPCError as exc:
                snapshot.error = str(exc)[:200]
                log.warning("metrics.pauses_unlisted", error=snapshot.error)
                self.pauses.snapshot = snapshot
                return
            gate = asyncio.Semaphore(QUERY_CONCURRENCY)

            async def read(pause_id: str) -> PauseState | None:
                async with gate:
                    try:
                        handle = client.get_workflow_handle_for(PauseWorkflow.run, pause_id)
                        return await handle.query(PauseWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
                    except Exception as exc:  # a pause that cannot answer is counted, not fatal to the scrape
                        log.warning("metrics.pause_unreadable", error=type(exc).__name__)
                        return None

            statuses = await asyncio.gather(*(read(p) for p in pause_ids))
            snapshot.statuses = [s for s in statuses if s is not None]
            snapshot.unreadable = sum(1 for s in statuses if s is None)
            self.pauses.snapshot = snapshot

    async def exposition(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)


def metric_names(registry: CollectorRegistry) -> Iterable[str]:
    """Every sample name the registry exposes now (for tests and checks)."""
    return {sample.name for family in registry.collect() for sample in family.samples}


def install_api_metrics(app: Any, client: Client | None, task_queue: str | None = None) -> ApiMetrics:
    """``GET /metrics`` on the API (token-free, like ``/healthz``), and refusals counted as they happen."""
    from fastapi import Response

    metrics = ApiMetrics(client, task_queue=task_queue)
    app.state.metrics = metrics
    app.state.api.recorder.observer = lambda refusal, where: metrics.count_refusal(
        refusal.action.removeprefix("refused."), where)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE)

    return metrics
