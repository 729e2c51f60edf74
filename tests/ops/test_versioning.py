"""Versioned workers on the real dev server: a pause is pinned to the version it started on and moves to
the current version only by continuing as new; new pauses start on the current version."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionResponse
from temporalio.client import Client
from temporalio.worker import Worker

from pausegate.config import VersioningSettings
from pausegate.connectors.registry import Connectors
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.updates import CompleteItemInput
from pausegate.temporal.client import temporal_cli
from pausegate.temporal.pauses import pause_handle
from pausegate.temporal.versioning import (
    adopt_stranded_pauses,
    current_version,
    deployment_version,
    promote,
    set_current_version,
)
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.support.harness import ANALYST, SECURITY_LEAD, Harness, HarnessFactory
from tests.support.polling import polled


@asynccontextmanager
async def versioned_worker(h: Harness, versioning: VersioningSettings) -> AsyncIterator[Worker]:
    connectors = Connectors(h.settings.model_copy(update={"versioning": versioning}))
    try:
        # a version is the regular worker and the urgent one (the halts and the revoke run there)
        async with build_worker(h.client, connectors, task_queue=h.task_queue) as worker, \
                build_urgent_worker(h.client, connectors):
            yield worker
    finally:
        await connectors.aclose()


def queues(h: Harness) -> list[str]:
    """The task queues waited on until they route to a new current version: the workflows' (the urgent
    queue carries activities only; its versioned worker takes the tasks of the runs pinned to its version)."""
    return [h.task_queue]


async def described(client: Client, program: str) -> DescribeWorkflowExecutionResponse:
    """What the server says of the pause's latest run."""
    return (await pause_handle(client, program).describe()).raw_description


async def running_on(client: Client, program: str) -> tuple[str, str]:
    """(run id, build id) of the pause's latest run, as the server routes it, once the run is pinned (a run
    started by an upgrading continue-as-new is auto-upgrade until its first workflow task completes)."""
    pinned = VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
    raw = await polled(partial(described, client, program), what="the run pinned",
                       until=lambda raw: raw.workflow_execution_info.versioning_info.behavior == pinned)
    info = raw.workflow_execution_info
    return info.execution.run_id, info.versioning_info.deployment_version.build_id


async def settled(client: Client, program: str) -> None:
    """Wait until the pause has nothing in flight (no activity, e.g. a notification, no workflow task):
    from then on only something from outside gives it a workflow task."""
    await polled(partial(described, client, program), what="the pause settled",
                 until=lambda raw: not raw.pending_activities and not raw.HasField("pending_workflow_task"))


async def moved_on(h: Harness, runs: int) -> PauseState:
    """Wait until the pause has continued as new into its ``runs``-th run. Now and then the first workflow
    task after a version change is not yet told of it; the release's wake (signal ``wake``) is then sent
    again, as docs/deployment.md says, a few times at most."""
    for _ in range(5):
        with contextlib.suppress(AssertionError):
            return await h.wait_for(lambda s: s.run_count == runs, timeout=10, what="the pause continued as new")
        await pause_handle(h.client, h.program).signal("wake")
    return await h.wait_for(lambda s: s.run_count == runs, timeout=10, what="the pause continued as new")


async def test_an_open_pause_stays_on_its_version_until_it_continues_as_new_then_runs_on_the_current_one(
    make_harness: HarnessFactory,
) -> None:
    deployment = f"pausegate-{uuid.uuid4().hex[:8]}"
    version_a = VersioningSettings(enabled=True, deployment_name=deployment, build_id="A")
    version_b = VersioningSettings(enabled=True, deployment_name=deployment, build_id="B")
    async with make_harness(agents=50, run_worker=False) as h, versioned_worker(h, version_a):
        await set_current_version(h.client, deployment_version(version_a), task_queues=queues(h))
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        await settled(h.client, h.program)
        first_run, build = await running_on(h.client, h.program)
        assert build == "A"

        async with versioned_worker(h, version_b):
            await set_current_version(h.client, deployment_version(version_b), task_queues=queues(h))
            assert await current_version(h.client, deployment) == deployment_version(version_b)
            # Nothing has woken the pause since: it is still the same run, pinned to A.
            assert await running_on(h.client, h.program) == (first_run, "A")

            # A reviewer acts: the run (on A) applies the action, then continues as new onto B.
            receipt = await h.act(CompleteItemInput(
                actor=ANALYST, item_id="access-review",
                evidence=[EvidenceAttachment(name="access-report", uri="https://docs.example.com/access")],
            ))
            assert receipt.phase == Phase.UNDER_REVIEW
            status = await moved_on(h, 2)
            second_run, build = await running_on(h.client, h.program)
            assert second_run != first_run and build == "B"
            assert next(i for i in status.checklist if i.id == "access-review").completed_by == ANALYST.id  # carried

            # The old run's last task was completed by A's worker; the next action is handled on B.
            await h.act(CompleteItemInput(
                actor=SECURITY_LEAD, item_id="root-cause",
                evidence=[EvidenceAttachment(name="root-cause-analysis", uri="https://docs.example.com/rca")],
            ))
            handle = h.client.get_workflow_handle(pause_handle(h.client, h.program).id, run_id=first_run)
            builds = [e.workflow_task_completed_event_attributes.deployment_version.build_id
                      async for e in handle.fetch_history_events()
                      if e.HasField("workflow_task_completed_event_attributes")]
            assert set(builds) == {"A"}
            handle = h.client.get_workflow_handle(pause_handle(h.client, h.program).id, run_id=second_run)
            builds = [e.workflow_task_completed_event_attributes.deployment_version.build_id
                      async for e in handle.fetch_history_events()
                      if e.HasField("workflow_task_completed_event_attributes")]
            assert builds and set(builds) == {"B"}
            assert (await h.status()).run_count == 2

            # A new pause starts on the current version.
            await pause_handle(h.client, h.program).terminate("test: make room for a new pause")
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
            third_run, build = await running_on(h.client, h.program)
            assert third_run not in (first_run, second_run) and build == "B"


async def test_a_single_version_deployment_carries_its_open_pauses_across_an_upgrade(
    make_harness: HarnessFactory,
) -> None:
    """The embedded stack runs one version at a time: an open pause from before versioning, or pinned to
    a version whose worker is gone, carries on with the new worker."""
    deployment = f"pausegate-{uuid.uuid4().hex[:8]}"
    version_a = VersioningSettings(enabled=True, deployment_name=deployment, build_id="A", promote="always")
    version_b = VersioningSettings(enabled=True, deployment_name=deployment, build_id="B", promote="always")
    async with make_harness(agents=20, run_worker=False) as h:
        # An unversioned worker (as before versioning) contains; then a versioned one takes over.
        async with versioned_worker(h, VersioningSettings()):
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
        async with versioned_worker(h, version_a):
            await promote(h.client, version_a, queues(h))
            await h.act(CompleteItemInput(
                actor=ANALYST, item_id="access-review",
                evidence=[EvidenceAttachment(name="access-report", uri="https://docs.example.com/access")],
            ))
            status = await h.status()
            assert next(i for i in status.checklist if i.id == "access-review").completed_by == ANALYST.id
            assert status.run_count == 1
            # The unversioned pause is not pinned to any version: nothing to adopt.
            assert await adopt_stranded_pauses(h.client, version_a, h.task_queue) == []

        # A pause that started on A is pinned to A.
        async with versioned_worker(h, version_a):
            await pause_handle(h.client, h.program).terminate("test: a pause pinned to A")
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
            _, build = await running_on(h.client, h.program)
            assert build == "A"

        # A's worker is gone (the stack was upgraded); B starts, becomes current, adopts the pause.
        async with versioned_worker(h, version_b):
            await promote(h.client, version_b, queues(h))
            assert await adopt_stranded_pauses(h.client, version_b, h.task_queue) == [
                pause_handle(h.client, h.program).id]
            receipt = await h.act(CompleteItemInput(
                actor=ANALYST, item_id="access-review",
                evidence=[EvidenceAttachment(name="access-report", uri="https://docs.example.com/access")],
            ))
            assert receipt.phase == Phase.UNDER_REVIEW
            description = await pause_handle(h.client, h.program).describe()
            assert description.raw_description.workflow_execution_info.versioning_info \
                .deployment_version.build_id == "B"
            # Adopted once; a second start of B finds nothing left to move.
            assert await adopt_stranded_pauses(h.client, version_b, h.task_queue) == []


async def test_a_release_wakes_idle_pauses_so_they_move_to_the_new_version_without_waiting_for_people(
    make_harness: HarnessFactory,
) -> None:
    deployment = f"pausegate-{uuid.uuid4().hex[:8]}"
    version_a = VersioningSettings(enabled=True, deployment_name=deployment, build_id="A")
    version_b = VersioningSettings(enabled=True, deployment_name=deployment, build_id="B")
    async with make_harness(agents=20, run_worker=False) as h, versioned_worker(h, version_a):
        await set_current_version(h.client, deployment_version(version_a), task_queues=queues(h))
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        await settled(h.client, h.program)
        first_run, _ = await running_on(h.client, h.program)
        async with versioned_worker(h, version_b):
            await set_current_version(h.client, deployment_version(version_b), task_queues=queues(h))
            assert await running_on(h.client, h.program) == (first_run, "A")  # nothing woke it yet
            # The release step of docs/deployment.md: signal `wake` to every open pause still on A (a batch
            # job; the task queue narrows it to this test's pauses on the shared server), again while some
            # has not moved.
            status = await h.status()
            for _ in range(5):
                done = await asyncio.to_thread(subprocess.run, [
                    temporal_cli(), "workflow", "signal", "--address", h.client.service_client.config.target_host,
                    "--query", f"WorkflowType = 'PauseWorkflow' AND ExecutionStatus = 'Running' "
                               f"AND TaskQueue = '{h.task_queue}' AND TemporalWorkerDeploymentVersion = "
                               f"'{deployment}:A'",
                    "--name", "wake", "--reason", "release B", "--yes",
                ], capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, done.stderr
                with contextlib.suppress(AssertionError):
                    status = await h.wait_for(lambda s: s.run_count == 2, timeout=15, what="the pause moved")
                    break
            assert status.run_count == 2
            second_run, build = await running_on(h.client, h.program)
            assert second_run != first_run and build == "B"
            assert status.phase == Phase.UNDER_REVIEW
