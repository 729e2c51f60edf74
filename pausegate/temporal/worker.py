"""The worker: runs pause workflows and their activities on the task queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.access import AccessActivities
from activities.conditions import ConditionActivities
from activities.data_actions import DataActionActivities
from activities.evidence import EvidenceActivities
from activities.fleet import FleetActivities
from activities.notify import NotifyActivities
from activities.watch import WatchActivities
from pausegate.config import Settings
from pausegate.connectors.postgres.conditions import PostgresConditions
from pausegate.connectors.registry import Connectors
from pausegate.logging import get_logger
from pausegate.observability.tracing import setup_tracing
from pausegate.observability.worker_metrics import PauseMetricsInterceptor, metrics_runtime
from pausegate.temporal.client import connect
from pausegate.temporal.versioning import deployment_config, promote
from workflows.pause import PauseWorkflow
from workflows.watch import WatchWorkflow


def build_worker(client: Client, connectors: Connectors, *, task_queue: str | None = None) -> Worker:
    """A worker for every pause workflow and activity, wired to ``connectors``."""
    fleet = FleetActivities(connectors.fleet)
    access = AccessActivities(connectors.access, connectors.evidence_store)
    evidence = EvidenceActivities(connectors.evidence_store, connectors.audit_source, connectors.access)
    notify = NotifyActivities(connectors.notifier)
    data_actions = DataActionActivities(connectors.data_actions)

    def dsn_of(name: str) -> str:
        return connectors.settings.postgres(name).dsn.get_secret_value()

    conditions = ConditionActivities(connectors.fleet, lambda name: PostgresConditions(dsn_of(name)),
                                     connectors.evidence_store)
    watch = WatchActivities(client)
    return Worker(
        client,
        task_queue=task_queue or connectors.settings.temporal.task_queue,
        workflows=[PauseWorkflow, WatchWorkflow],
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
            fleet.set_collection,
            fleet.check_collection,
            conditions.check_consent,
            conditions.halt_unconsented,
            conditions.resume_consented_agents,
            conditions.check_conditions,
            data_actions.apply_data_action,
            data_actions.verify_data_actions,
            data_actions.check_data_actions,
            watch.pull_switch,
            watch.open_pause_run,
        ],
        max_concurrent_activities=64,
        # A replacement worker picks up a dead worker's workflows within seconds, not the 10 s default.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        # None when versioning is off; otherwise this release's deployment version (pauses are pinned to it)
        deployment_config=deployment_config(connectors.settings.versioning),
        # pausegate's metrics, through the SDK's replay-safe meter (traces come with the client's interceptor)
        interceptors=[PauseMetricsInterceptor()],
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and run the worker until ``stop`` is set (or forever)."""
    log = get_logger("pausegate.temporal.worker")
    setup_tracing(settings.observability, "worker")
    runtime = metrics_runtime(settings.observability.worker_metrics_bind)
    client = await connect(settings.temporal, settings.encryption, runtime=runtime)
    connectors = Connectors(settings)
    worker = build_worker(client, connectors)
    log.info("worker.started", task_queue=settings.temporal.task_queue, address=settings.temporal.address)
    try:
        async with worker:
            await promote(client, settings.versioning, [settings.temporal.task_queue])
            await (stop.wait() if stop else asyncio.Event().wait())
    finally:
        await connectors.aclose()
        log.info("worker.stopped")
