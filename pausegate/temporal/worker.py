"""The worker: runs pause workflows and their activities on the task queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.access import AccessActivities
from activities.evidence import EvidenceActivities
from activities.fleet import FleetActivities
from activities.notify import NotifyActivities
from pausegate.config import Settings
from pausegate.connectors.registry import Connectors
from pausegate.logging import get_logger
from pausegate.temporal.client import connect
from workflows.pause import PauseWorkflow


def build_worker(client: Client, connectors: Connectors, *, task_queue: str | None = None) -> Worker:
    """A worker for every pause workflow and activity, wired to ``connectors``."""
    fleet = FleetActivities(connectors.fleet)
    access = AccessActivities(connectors.access, connectors.evidence_store)
    evidence = EvidenceActivities(connectors.evidence_store, connectors.audit_source, connectors.access)
    notify = NotifyActivities(connectors.notifier)
    return Worker(
        client,
        task_queue=task_queue or connectors.settings.temporal.task_queue,
        workflows=[PauseWorkflow],
        activities=[
            fleet.halt_agents,
            fleet.check_agents_silent,
            fleet.resume_agents,
            access.contain_dataset,
            access.revoke_dataset,
            access.verify_dataset,
            access.check_dataset,
            access.restore_grants,
            access.check_plan,
            access.diff_plan,
            evidence.snapshot_audit_source,
            evidence.write_report,
            evidence.exposure_report,
            evidence.archive_timeline,
            notify.notify,
        ],
        max_concurrent_activities=64,
        # A replacement worker picks up a dead worker's workflows within seconds, not the 10 s default.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and run the worker until ``stop`` is set (or forever)."""
    log = get_logger("pausegate.temporal.worker")
    client = await connect(settings.temporal)
    connectors = Connectors(settings)
    worker = build_worker(client, connectors)
    log.info("worker.started", task_queue=settings.temporal.task_queue, address=settings.temporal.address)
    try:
        async with worker:
            await (stop.wait() if stop else asyncio.Event().wait())
    finally:
        await connectors.aclose()
        log.info("worker.stopped")
