"""Client-side operations on pauses: start one (idempotently), send it an update, read it.

The API goes through these functions; it records every refusal itself (coalesced, in the pause's
timeline or its refusal log: ``pausegate.api.actions``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pausegate.errors import PauseNotFound
from pausegate.models.break_glass import ApproveBreakGlassInput, EndBreakGlassInput, RequestBreakGlassInput
from pausegate.models.people import PauseRequest
from pausegate.models.signatures import KeyRing
from pausegate.models.state import PauseState, PauseWorkflowInput, Tuning
from pausegate.models.updates import (
    ApproveInput,
    CompleteItemInput,
    DecommissionInput,
    ProposePlanInput,
    RejectPlanInput,
    RetryStepInput,
    UpdateReceipt,
    WaiveAgentsInput,
    WaiveResidualInput,
    WaiveStepInput,
)
from pausegate.temporal.drills import preempt_drill
from pausegate.temporal.ids import pause_id
from pausegate.temporal.sealing import addressed_start, addressed_update, new_update_id
from pausegate.temporal.updates import execute_update
from workflows.pause import PauseWorkflow


async def start_pause(
    client: Client, request: PauseRequest, *, task_queue: str, tuning: Tuning | None = None,
    keys: KeyRing | None = None,
) -> tuple[WorkflowHandle[Any, PauseState], bool]:
    """Pull the kill switch. A second pull while a pause is open returns the open pause. ``keys``: the
    enrolled keys the pause pins for signed approvals.

    Returns the handle and whether this call started the pause.
    """
    # FAIL rather than USE_EXISTING: the SDK has no public way to tell a handle it started from
    # one it found, while the already-started error says exactly that, race-free (of two
    # concurrent pulls the server lets exactly one start).
    tuning = tuning or Tuning()
    workflow_id = pause_id(client, request.program)
    try:
        handle = await client.start_workflow(
            PauseWorkflow.run,
            addressed_start(client, PauseWorkflowInput(request=request, tuning=tuning, keys=keys), workflow_id),
            id=workflow_id,
            task_queue=task_queue,
            # continue-as-new keeps it, so it holds for the pause's whole life
            task_timeout=timedelta(seconds=tuning.workflow_task_timeout_seconds),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            # Where this client also runs the workflows (the embedded stack's API beside its worker), the
            # first workflow task, the one that schedules the program switch, comes back with the start
            # and runs at once instead of queueing behind other pauses' tasks; elsewhere nothing changes.
            request_eager_start=True,
        )
    except WorkflowAlreadyStartedError as exc:
        # the run that is open now, as USE_EXISTING would have answered
        return client.get_workflow_handle_for(PauseWorkflow.run, workflow_id, run_id=exc.run_id), False
    # After the start, never before it: a real pause waits for no drill.
    await preempt_drill(client, request.program)
    return handle, True


def pause_handle(client: Client, program: str) -> WorkflowHandle[Any, PauseState]:
    """The handle of a program's pause (latest run)."""
    return client.get_workflow_handle_for(PauseWorkflow.run, pause_id(client, program))


async def read_status(client: Client, program: str) -> PauseState:
    """The pause's status, or PauseNotFound."""
    try:
        return await pause_handle(client, program).query(PauseWorkflow.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PauseNotFound(f"no pause for program {program!r}") from None
        raise


UPDATES: dict[type, Any] = {
    CompleteItemInput: PauseWorkflow.complete_item,
    ProposePlanInput: PauseWorkflow.propose_plan,
    ApproveInput: PauseWorkflow.approve_plan,
    RejectPlanInput: PauseWorkflow.reject_plan,
    WaiveAgentsInput: PauseWorkflow.waive_agents,
    WaiveResidualInput: PauseWorkflow.waive_residual,
    DecommissionInput: PauseWorkflow.decommission,
    RetryStepInput: PauseWorkflow.retry_step,
    WaiveStepInput: PauseWorkflow.waive_step,
    RequestBreakGlassInput: PauseWorkflow.request_break_glass,
    ApproveBreakGlassInput: PauseWorkflow.approve_break_glass,
    EndBreakGlassInput: PauseWorkflow.end_break_glass,
}
"""The pause's update that takes each input."""

PauseAction = (CompleteItemInput | ProposePlanInput | ApproveInput | RejectPlanInput | WaiveAgentsInput
               | DecommissionInput | WaiveResidualInput | RetryStepInput | WaiveStepInput
               | RequestBreakGlassInput | ApproveBreakGlassInput | EndBreakGlassInput)


async def send_update(client: Client, program: str, action: PauseAction, *, update_id: str | None = None
                      ) -> UpdateReceipt:
    """Send one update to a program's pause: ``ActionRefused`` when the workflow refuses it (not recorded
    here: the caller records it), ``PauseNotFound`` without an open pause. The action is addressed to the
    pause open now and to its update id (``pausegate.temporal.sealing``)."""
    missing = f"no open pause for program {program!r}"
    uid = update_id or new_update_id()
    handle, addressed = await addressed_update(client, pause_id(client, program), action, uid, missing=missing)
    receipt: UpdateReceipt = await execute_update(handle, UPDATES[type(action)], addressed, update_id=uid,
                                                  missing=missing)
    return receipt
