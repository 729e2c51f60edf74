"""The workers: pause workflows and their activities on the task queue, the urgent steps on their own.

A worker takes one role (``WorkerRole``). In a deployment under load the roles run in separate
processes: a workflow task (the one that schedules a pause's program switch, or reads an urgent step's
result) must never wait for the GIL behind another pause's sealing or verification, and the steps that
prove a pause run with bounded concurrency so fifty pauses at once share the cores instead of starving
everything else. Tests and small deployments run workflows and proof together (``ALL``).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.access import AccessActivities
from activities.break_glass import BreakGlassActivities
from activities.conditions import ConditionActivities
from activities.copies import CopiesActivities, Elsewhere
from activities.data_actions import DataActionActivities
from activities.data_stop import DataStopActivities
from activities.drill import DrillActivities
from activities.drill_schedule import ScheduledDrillActivities
from activities.evidence import EvidenceActivities
from activities.fleet import FleetActivities
from activities.notify import NotifyActivities
from activities.origins import OriginActivities
from activities.watch import WatchActivities
from pausegate import models
from pausegate.config import Settings
from pausegate.connectors.postgres.conditions import PostgresConditions
from pausegate.connectors.registry import Connectors
from pausegate.logging import get_logger
from pausegate.observability.tracing import setup_tracing
from pausegate.observability.worker_metrics import PauseMetricsInterceptor, metrics_runtime
from pausegate.temporal.client import connect
from pausegate.temporal.drills import pause_open, scheduled_drill
from pausegate.temporal.pauses import pause_handle, start_pause
from pausegate.temporal.roles import PROOF_CONCURRENCY, PROOF_NICENESS, WorkerRole
from pausegate.temporal.versioning import build_id, deployment_config, promote
from workflows.break_glass import BreakGlassWorkflow
from workflows.drill import DrillWorkflow
from workflows.drill_schedule import ScheduledDrillWorkflow
from workflows.pause import PauseWorkflow
from workflows.watch import WatchWorkflow

# The sandbox re-imports every module it does not pass through for each workflow run: with fifty pauses
# started at once that made each pause's first workflow task (the one that schedules the program switch)
# wait up to a second or more on one worker. The workflow modules keep no state of their own at module
# level, so they are imported once; the sandbox's checks on what workflow code calls still apply.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


def _complete_models() -> None:
    """Resolve the forward references of the models the workflow carries now, outside the sandbox: the
    classes are shared with every workflow run, and a lazy resolution inside one cannot see the module."""
    for module in pkgutil.iter_modules(models.__path__, f"{models.__name__}."):
        for value in vars(importlib.import_module(module.name)).values():
            defined_here = isinstance(value, type) and value.__module__ == module.name
            if defined_here and issubclass(value, BaseModel) and not value.__pydantic_complete__:
                value.model_rebuild()

# The activities that stop harm, by name; they run on the urgent queue (the workflow routes them there
# with ``urgent=True`` in its activity options) and only there.
URGENT_ACTIVITIES = frozenset({"halt_agents", "revoke_dataset", "halt_canary", "close_break_glass"})


def _activities(client: Client, connectors: Connectors) -> list[Callable[..., Any]]:
    fleet = FleetActivities(connectors.fleet)
    access = AccessActivities(connectors.access, connectors.evidence_store)
    evidence = EvidenceActivities(connectors.evidence_store, connectors.audit_source, connectors.access)
    notify = NotifyActivities(connectors.notifier, console=connectors.settings.api.passkey_origins_or_default()[0])
    data_actions = DataActionActivities(connectors.data_actions)

    def dsn_of(name: str) -> str:
        return connectors.settings.postgres(name).dsn.get_secret_value()

    conditions = ConditionActivities(connectors.fleet, lambda name: PostgresConditions(dsn_of(name)),
                                     connectors.evidence_store)

    def elsewhere_of(name: str) -> Elsewhere:
        connection = connectors.settings.postgres(name)
        info = conninfo_to_dict(connection.dsn.get_secret_value())
        host = str(info.get("host") or "localhost")
        return Elsewhere(connections=tuple(connection.copies_elsewhere or ()),
                         hosts=(host, *(connection.known_as or ())), port=int(info.get("port") or 5432),
                         dbname=str(info.get("dbname") or ""))

    origins = OriginActivities(connectors.evidence_store, connectors.audit_source, connectors.access, dsn_of)
    watch = WatchActivities(client, start_pause=start_pause, pause_handle=pause_handle)
    data_stop = DataStopActivities(dsn_of)
    copies = CopiesActivities(dsn_of, connectors.evidence_store, connectors.access, elsewhere_of,
                              connectors.audit_source)
    break_glass = BreakGlassActivities(dsn_of, connectors.evidence_store, connectors.audit_source, connectors.access)
    drill = DrillActivities(connectors.fleet, dsn_of, connectors.evidence_store,
                            lambda program: pause_open(client, program))
    scheduled = ScheduledDrillActivities(lambda occurrence: scheduled_drill(client, occurrence))
    return [
        drill.pause_open,
        scheduled.scheduled_drill,
        drill.halt_canary,
        drill.resume_canary,
        drill.restore_canary,
        drill.write_drill_report,
        fleet.halt_agents,
        fleet.check_agents_silent,
        fleet.resume_agents,
        access.revoke_dataset,
        access.verify_dataset,
        access.check_dataset,
        access.restore_grants,
        access.check_plan,
        access.diff_plan,
        evidence.snapshot_audit_source,
        evidence.write_report,
        evidence.exposure_report,
        origins.derive_origins,
        evidence.archive_timeline,
        notify.notify,
        data_stop.check_data_stop,
        copies.find_pause_copies,
        copies.contain_pause_copies,
        copies.settle_pause_copies,
        fleet.set_collection,
        fleet.check_collection,
        conditions.check_consent,
        conditions.halt_unconsented,
        conditions.resume_consented_agents,
        conditions.check_conditions,
        conditions.write_withdrawal,
        conditions.stamp_writes,
        data_actions.apply_data_action,
        data_actions.verify_data_actions,
        data_actions.check_data_actions,
        watch.pull_switch,
        watch.open_pause_run,
        break_glass.open_break_glass,
        break_glass.close_break_glass,
        break_glass.seal_break_glass,
    ]


def _name(fn: Callable[..., Any]) -> str:
    defn = activity._Definition.from_callable(fn)
    return defn.name if defn is not None and defn.name else ""


def _is_urgent(fn: Callable[..., Any]) -> bool:
    return _name(fn) in URGENT_ACTIVITIES


def activities_by_name(client: Client, connectors: Connectors) -> dict[str, Callable[..., Any]]:
    """Every activity the workers run, by its registered name, wired to ``connectors`` exactly as the
    workers wire them (for running a step without a workflow, as a benchmark's baseline does)."""
    return {_name(fn): fn for fn in _activities(client, connectors)}


def _version(connectors: Connectors) -> dict[str, Any]:
    """This release's deployment version when versioning is on; otherwise its build id all the same, so
    that the SDK does not hash every loaded module to make one up (a fifth of a replacement worker's start)."""
    config = deployment_config(connectors.settings.versioning)
    return {"deployment_config": config} if config else {"build_id": build_id(connectors.settings.versioning)}


def build_worker(
    client: Client, connectors: Connectors, *, task_queue: str | None = None,
    max_concurrent_activities: int | None = None, role: WorkerRole = WorkerRole.ALL,
) -> Worker:
    """A worker for the pause workflows (``role`` ALL or WORKFLOWS) and every activity but the urgent ones
    (ALL or PROOF; ``build_urgent_worker`` runs those), wired to ``connectors``."""
    if role is WorkerRole.URGENT:
        return build_urgent_worker(client, connectors, task_queue=task_queue)
    _complete_models()
    runs_workflows = role in (WorkerRole.ALL, WorkerRole.WORKFLOWS)
    runs_proof = role in (WorkerRole.ALL, WorkerRole.PROOF)
    default_concurrency = PROOF_CONCURRENCY if role is WorkerRole.PROOF else 64
    return Worker(
        client,
        task_queue=task_queue or connectors.settings.temporal.task_queue,
        workflows=[PauseWorkflow, WatchWorkflow, DrillWorkflow, ScheduledDrillWorkflow, BreakGlassWorkflow]
        if runs_workflows else [],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[fn for fn in _activities(client, connectors) if not _is_urgent(fn)] if runs_proof else [],
        max_concurrent_activities=max_concurrent_activities or default_concurrency,
        # fifty pauses may begin at once: as many polls as the server says there are tasks for, not five
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
        # A replacement worker picks up a dead worker's workflows within seconds, not the 10 s default.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
        # this release's deployment version (pauses are pinned to it) when versioning is on
        **_version(connectors),
        # pausegate's metrics, through the SDK's replay-safe meter (traces come with the client's interceptor)
        interceptors=[PauseMetricsInterceptor()],
    )


def build_urgent_worker(client: Client, connectors: Connectors, *, task_queue: str | None = None) -> Worker:
    """A worker for the steps that stop harm (``URGENT_ACTIVITIES``) and nothing else: the workflows and
    the steps that prove the pause run on the other worker, so these never queue behind them.
    ``task_queue`` defaults to the configured urgent queue."""
    return Worker(
        client,
        task_queue=task_queue or connectors.settings.temporal.urgent_queue,
        activities=[fn for fn in _activities(client, connectors) if _is_urgent(fn)],
        max_concurrent_activities=256,
        # a burst of pauses brings a burst of halts and revokes: polls scale with them
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
        # the same deployment version as the regular worker: a version is made current only when it
        # polls every task queue of the deployment
        **_version(connectors),
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None, urgent: bool = False,
                     role: WorkerRole = WorkerRole.ALL) -> None:
    """Connect to Temporal and run a worker of ``role`` (``urgent``: the urgent worker) until ``stop`` is set
    (or forever)."""
    role = WorkerRole.URGENT if urgent else role
    log = get_logger("pausegate.temporal.worker")
    if role is WorkerRole.PROOF:
        os.nice(PROOF_NICENESS)
    setup_tracing(settings.observability, "worker")
    runtime = metrics_runtime(settings.observability.worker_metrics_bind)
    client = await connect(settings.temporal, settings.encryption, runtime=runtime)
    connectors = Connectors(settings)
    worker = build_worker(client, connectors, role=role)
    log.info("worker.started", task_queue=worker.task_queue, role=role.value, urgent=role is WorkerRole.URGENT,
             address=settings.temporal.address)
    try:
        async with worker:
            # The version is made current by a worker that runs the workflows; the others only poll it.
            if role in (WorkerRole.ALL, WorkerRole.WORKFLOWS):
                await promote(client, settings.versioning, [worker.task_queue])
            await (stop.wait() if stop else asyncio.Event().wait())
    finally:
        await connectors.aclose()
        log.info("worker.stopped")
