"""``pausegate worker`` as deployed: its Prometheus endpoint, and its version made current by policy."""

from __future__ import annotations

import asyncio
import contextlib
import time
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
        deadline = time.monotonic() + 60
        while await current_version(temporal_client, versioning.deployment_name) != deployment_version(versioning):
            assert time.monotonic() < deadline and not worker.done(), "the worker's version never became current"
            await asyncio.sleep(0.5)  # a deployment takes few requests a second
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
            deadline = time.monotonic() + 60
            while not any(e["event"] == "versioning.kept" and e["build_id"] == "r2" for e in logs):
                assert time.monotonic() < deadline and not second.done(), "the second worker never decided"
                await asyncio.sleep(0.1)
            assert await current_version(temporal_client, versioning.deployment_name) == \
                deployment_version(versioning)
        finally:
            stop.set()
            await second
    finally:
        stop.set()
        await worker
        stack.close()
