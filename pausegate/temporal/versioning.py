"""Worker deployment versioning: which version a worker is, and making a version current.

Each release of the worker code is one Worker Deployment Version (deployment name + build id). The
pause workflow is PINNED: a run never meets code other than the code it started on, so a release
needs no patching for the pauses already open. When a new version becomes current the server tells
every pinned run (``workflow.info().is_target_worker_deployment_version_changed()``, temporalio 1.35),
and the pause continues as new with ``initial_versioning_behavior=AUTO_UPGRADE`` at its next workflow
task, onto the new version (upgrade-on-continue-as-new, a public preview of Temporal).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

import pausegate
from pausegate.config import VersioningSettings
from pausegate.logging import get_logger

log = get_logger("pausegate.temporal.versioning")
T = TypeVar("T")

# The server answers these until the version's first worker has polled (its task queues registered).
_NOT_YET = frozenset({RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION})
# A deployment takes few requests a second ("too many requests issued to Worker Deployment"):
# several workers starting at once are told to come back later.
_BUSY = frozenset({RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE})


async def _patiently(call: Callable[[], Awaitable[T]], retry_on: frozenset[RPCStatusCode], timeout: float) -> T:
    """``call()``, again with backoff while the server answers one of ``retry_on``, up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return await call()
        except RPCError as exc:
            if exc.status not in retry_on or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def build_id(settings: VersioningSettings) -> str:
    """The configured build id, else the package version."""
    return settings.build_id or pausegate.__version__


def deployment_version(settings: VersioningSettings) -> WorkerDeploymentVersion:
    return WorkerDeploymentVersion(deployment_name=settings.deployment_name, build_id=build_id(settings))


def deployment_config(settings: VersioningSettings) -> WorkerDeploymentConfig | None:
    """The worker's deployment options, or None when versioning is off (an unversioned worker)."""
    if not settings.enabled:
        return None
    # PINNED by default too, so that a workflow type that declares nothing is pinned like the pause.
    return WorkerDeploymentConfig(
        version=deployment_version(settings),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


async def current_version(
    client: Client, deployment_name: str, *, timeout: float = 30.0
) -> WorkerDeploymentVersion | None:
    """The deployment's current version; None when it has none (or no worker ever polled)."""
    try:
        response = await _patiently(lambda: client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment_name)
        ), _BUSY, timeout)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    current = response.worker_deployment_info.routing_config.current_deployment_version
    if not current.build_id:
        return None
    return WorkerDeploymentVersion(deployment_name=current.deployment_name, build_id=current.build_id)


async def set_current_version(
    client: Client,
    version: WorkerDeploymentVersion,
    *,
    task_queues: Sequence[str] = (),
    timeout: float = 60.0,
    identity: str = "pausegate",
) -> None:
    """Make ``version`` current (new pauses start on it; open ones move when they continue as new).

    The server knows a version only once one of its workers has polled, so this waits for that; and
    it returns once each of ``task_queues`` routes to the version.
    """
    await _patiently(lambda: client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=version.deployment_name,
            build_id=version.build_id,
            identity=identity,
        )
    ), _NOT_YET | _BUSY, timeout)
    await _routed(client, version, task_queues, timeout)
    log.info("versioning.current", deployment=version.deployment_name, build_id=version.build_id)


async def _routed(client: Client, version: WorkerDeploymentVersion, task_queues: Sequence[str],
                  timeout: float) -> None:
    """Wait until each task queue reports ``version`` as its current one, so that what the caller does
    next (start a pause, wake the open ones) meets the new routing there."""
    deadline = time.monotonic() + timeout
    for name in task_queues:
        while True:
            response = await _patiently(lambda name=name: client.workflow_service.describe_task_queue(  # type: ignore[misc]
                DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=name),
                                         task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
            ), _BUSY, timeout)
            current = response.versioning_info.current_deployment_version
            if (current.deployment_name, current.build_id) == (version.deployment_name, version.build_id):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"task queue {name!r} does not route to {version.build_id!r} yet")
            await asyncio.sleep(0.2)


async def promote(client: Client, settings: VersioningSettings, task_queues: Sequence[str] = ()) -> None:
    """Apply the ``promote`` policy for a worker of this configuration that has started polling
    (``task_queues``: the queues it polls, waited on until they route to it)."""
    if not settings.enabled or settings.promote == "never":
        return
    version = deployment_version(settings)
    if settings.promote == "if-none":
        current = await current_version(client, settings.deployment_name)
        if current is not None:
            log.info("versioning.kept", deployment=settings.deployment_name, current=current.build_id,
                     build_id=version.build_id)
            return
    await set_current_version(client, version, task_queues=task_queues)


async def adopt_stranded_pauses(client: Client, settings: VersioningSettings, task_queue: str) -> list[str]:
    """For a deployment that runs one version at a time (the embedded stack): open pauses on
    ``task_queue`` pinned to another version of this deployment, whose workers are gone with the old
    code, are moved to the current version (an auto-upgrade override; each continues as it would have
    before versioning: its history replays on the new code). Returns the workflow ids moved.

    A cluster that keeps each version's workers until its pinned pauses have moved on never needs this.
    """
    if not settings.enabled:
        return []
    ours = deployment_version(settings)
    moved: list[str] = []
    query = f"WorkflowType = 'PauseWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
        pinned = info.deployment_version
        if pinned.deployment_name != ours.deployment_name or pinned.build_id in ("", ours.build_id):
            continue
        if info.versioning_override.auto_upgrade:
            continue
        await client.workflow_service.update_workflow_execution_options(UpdateWorkflowExecutionOptionsRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=execution.id, run_id=execution.run_id),
            workflow_execution_options=WorkflowExecutionOptions(versioning_override=VersioningOverride(
                auto_upgrade=True)),
            update_mask=FieldMask(paths=["versioning_override"]),
            identity="pausegate",
        ))
        log.warning("versioning.adopted", workflow_id=execution.id, from_build_id=pinned.build_id,
                    to_build_id=ours.build_id)
        moved.append(execution.id)
    return moved
