"""``pausegate worker`` as deployed: its Prometheus endpoint, and its version made current by policy."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
import structlog
from temporalio.client import Client

from pausegate.config import ObservabilitySettings, Settings, TemporalSettings, VersioningSettings
from pausegate.temporal import versioning as versioning_module
from pausegate.temporal.versioning import current_version, deployment_version
from pausegate.temporal.worker import run_worker
from tests.ops.conftest import free_port
from tests.support.polling import polled


async def test_the_worker_serves_metrics_and_makes_its_version_current_when_none_is(
    temporal_client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    versioning = VersioningSettings(enabled=True, deployment_name=f"pausegate-{uuid.uuid4().hex[:8]}",
                                    build_id="r1", promote="if-none")
    settings = Settings(
        temporal=TemporalSettings(address=temporal_client.service_client.config.target_host,
                                  task_queue=f"pausegate-{uuid.uuid4().hex[:8]}"),
        observability=ObservabilitySettings(worker_metrics_bind=bind),
        versioning=versioning,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    stack = contextlib.ExitStack()
    try:
        async def current() -> bool:
            assert not worker.done(), "the worker ended before its version became current"
            return await current_version(temporal_client, versioning.deployment_name) == deployment_version(versioning)
        # a deployment takes few requests a second
        await polled(current, what="the worker's version current", every=0.5)
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"http://{bind}/metrics")).text
        assert "temporal_worker_task_slots_available" in text or "temporal_num_pollers" in text, text[:500]

        # A second worker of another build with "if-none" leaves the current version alone.
        logs = stack.enter_context(structlog.testing.capture_logs())
        # A logger bound before (structlog caches loggers on first use once configured) would not reach the
        # capture: the versioning module gets one made now.
        monkeypatch.setattr(versioning_module, "log", structlog.get_logger("pausegate.temporal.versioning"))
        other = versioning.model_copy(update={"build_id": "r2"})
        second = asyncio.create_task(run_worker(settings.model_copy(update={
            "versioning": other, "observability": ObservabilitySettings()}), stop=stop))
        try:
            async def kept() -> bool:
                assert not second.done(), "the second worker ended before it decided"
                return any(e["event"] == "versioning.kept" and e["build_id"] == "r2" for e in logs)
            await polled(kept, what="the second worker's decision")
            assert await current_version(temporal_client, versioning.deployment_name) == \
                deployment_version(versioning)
        finally:
            stop.set()
            await second
    finally:
        stop.set()
        await worker
        stack.close()
