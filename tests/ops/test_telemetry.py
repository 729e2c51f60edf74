"""One pause, one trace; metrics that move when a pause runs; log lines that name their trace."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

import httpx
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client

from pausegate.config import TemporalSettings
from pausegate.logging import add_trace_context
from pausegate.observability.api_metrics import ApiMetrics
from pausegate.observability.worker_metrics import metrics_runtime
from pausegate.temporal.client import connect
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.api.support import api_world
from tests.ops.conftest import free_port
from tests.support.harness import HarnessFactory

AGENTS = 60
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)$", re.MULTILINE)


def samples(text: str, name: str) -> dict[str, float]:
    """label text → value, for every sample of ``name`` in a Prometheus exposition."""
    return {m["labels"] or "": float(m["value"]) for m in SAMPLE.finditer(text) if m["name"] == name}


def total(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for lbl, v in samples(text, name).items() if all(w in lbl for w in wanted))


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.text


class TestTheApisMetricsUnderAFlood:
    async def test_scrapes_within_the_interval_share_one_read_of_the_pauses(self, temporal_client: Client) -> None:
        metrics = ApiMetrics(temporal_client, min_interval=60.0)
        reads = 0
        real = metrics.pauses

        original = temporal_client.list_workflows

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return original(*args, **kwargs)

        temporal_client.list_workflows = counting  # type: ignore[method-assign]
        try:
            await asyncio.gather(*(metrics.exposition() for _ in range(50)))
            await metrics.exposition()
        finally:
            del temporal_client.list_workflows
        assert reads == 1
        assert real.snapshot.error is None


class TestOnePauseOnTheOutside:
    async def test_a_pause_started_through_the_api_is_one_trace_with_metrics_and_traced_logs(
        self, make_harness: HarnessFactory, temporal_client: Client, spans: InMemorySpanExporter,
        tmp_path: Path,
    ) -> None:
        worker_metrics = f"127.0.0.1:{free_port()}"
        # The worker's client, as run_worker builds it: tracing interceptor and a Prometheus runtime.
        worker_client = await connect(TemporalSettings(address=temporal_client.service_client.config.target_host),
                                      runtime=metrics_runtime(worker_metrics))
        api_client = await connect(TemporalSettings(address=temporal_client.service_client.config.target_host))
        async with make_harness(agents=AGENTS, run_worker=False) as h:
            async with build_worker(worker_client, h.connectors, task_queue=h.task_queue), \
                    build_urgent_worker(worker_client, h.connectors):
                before_worker = await scrape(f"http://{worker_metrics}/metrics")
                assert not samples(before_worker, "pausegate_halts_confirmed_total")
                async with api_world(dataclasses.replace(h, client=api_client), tmp_path / "api") as api:
                    api.app.state.metrics.min_interval = 0.0  # every scrape reads the pauses afresh
                    before_api = (await api.client().get("/metrics")).text
                    assert samples(before_api, "pausegate_pauses")['{state="CONTAINING"}'] == 0

                    with structlog.testing.capture_logs(processors=[add_trace_context]) as logs:
                        r = await api.client("carol").post("/v1/pauses", json={"program": h.program,
                                                                                "reason": "traced"})
                        assert r.status_code == 201, r.text
                        await api.wait_for_state("UNDER_REVIEW")

                    after_api = (await api.client().get("/metrics")).text  # no token: like /healthz
                    refused = await api.client("ann").post("/v1/pauses", json={"program": h.program, "reason": "x"})
                    assert refused.status_code == 403, refused.text
                    refusals_text = (await api.client().get("/metrics")).text
                after_worker = await scrape(f"http://{worker_metrics}/metrics")

        # --- one trace: the API's server span, StartWorkflow, RunWorkflow and the activities
        finished = spans.get_finished_spans()
        server = sorted((s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /v1/pauses"),
                        key=lambda s: s.start_time or 0)
        assert len(server) == 2, [s.name for s in finished if s.kind == SpanKind.SERVER]  # started, refused
        assert [s.attributes.get("http.status_code") or s.attributes.get("http.response.status_code")
                for s in server] == [201, 403]
        trace_id = server[0].context.trace_id
        in_trace = {s.name for s in finished if s.context.trace_id == trace_id}
        assert "StartWorkflow:PauseWorkflow" in in_trace
        assert "RunWorkflow:PauseWorkflow" in in_trace
        for activity in ("halt_agents", "revoke_dataset", "verify_dataset", "snapshot_audit_source"):
            assert f"StartActivity:{activity}" in in_trace, sorted(in_trace)
            assert f"RunActivity:{activity}" in in_trace, sorted(in_trace)

        # --- a log line emitted inside an activity carries that trace's id
        revoked = [e for e in logs if e["event"] == "revoked"]  # PostgresAccess, inside revoke_dataset
        assert revoked, sorted({e["event"] for e in logs})
        assert all(e["trace_id"] == format(trace_id, "032x") for e in revoked)
        run_activity = {format(s.context.span_id, "016x") for s in finished
                        if s.context.trace_id == trace_id and s.name == "RunActivity:revoke_dataset"}
        assert {e["span_id"] for e in revoked} <= run_activity

        # --- the worker's endpoint: the SDK's metrics and pausegate's, moved by this pause
        assert total(after_worker, "temporal_workflow_completed") == 0  # the SDK's own, same endpoint
        assert total(after_worker, "temporal_activity_execution_latency_count") > 0
        assert total(after_worker, "pausegate_halts_confirmed_total", workflow_type="PauseWorkflow") == AGENTS
        assert total(after_worker, "pausegate_halts_unconfirmed_total") == 0
        assert total(after_worker, "pausegate_pause_transitions_total", state="CONTAINING") == 1
        assert total(after_worker, "pausegate_pause_transitions_total", state="UNDER_REVIEW") == 1
        assert total(after_worker, "pausegate_time_to_contain_seconds_count") == 1
        assert total(after_worker, "pausegate_time_to_contain_seconds_bucket", le="900") == 1  # seconds buckets
        assert total(after_worker, "pausegate_evidence_sealed_bytes_total") > 0

        # --- the API's endpoint: the pause as it is now, and the refusal
        assert samples(after_api, "pausegate_pauses")['{state="UNDER_REVIEW"}'] == 1
        assert samples(after_api, "pausegate_pauses")['{state="CONTAINING"}'] == 0
        assert samples(after_api, "pausegate_open_pause_halts_confirmed") == {"": float(AGENTS)}
        assert samples(after_api, "pausegate_open_pause_halts_unconfirmed") == {"": 0.0}
        assert samples(after_api, "pausegate_open_pause_time_to_contain_seconds_max")[""] > 0
        assert samples(after_api, "pausegate_open_pause_evidence_sealed_bytes")[""] > 0
        assert h.program not in after_api  # counts, not programs
        # ann (an analyst) may not pull the switch: refused, into the open pause's timeline, and counted
        assert not samples(after_api, "pausegate_refusals_total")
        assert samples(refusals_text, "pausegate_refusals_total") == {'{action="trigger",recorded_in="timeline"}': 1.0}
