"""Client-side operations on watches: read one, and withdraw an employee's consent through it."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from pausegate.errors import PauseNotFound
from pausegate.models.watch import WatchReceipt, WatchState, WithdrawConsentInput
from pausegate.temporal.pauses import pause_handle
from pausegate.temporal.updates import execute_update
from workflows.watch import WatchWorkflow
from workflows.watch_ids import watch_workflow_id


def watch_handle(client: Client, program: str) -> WorkflowHandle[Any, WatchState]:
    """The handle of a program's watch (latest run)."""
    # Derived from the pause's id as the client knows it, the way the pause derives it from its own.
    return client.get_workflow_handle_for(WatchWorkflow.run, watch_workflow_id(pause_handle(client, program).id))


async def read_watch(client: Client, program: str) -> WatchState:
    """The watch's state, or PauseNotFound when the program was never watched."""
    try:
        return await watch_handle(client, program).query(WatchWorkflow.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PauseNotFound(f"no watch for program {program!r}") from None
        raise


async def withdraw_consent(client: Client, program: str, action: WithdrawConsentInput, *,
                           update_id: str | None = None) -> WatchReceipt:
    """Halt an employee's agents through the program's watch; a refusal is raised with its reason."""
    receipt: WatchReceipt = await execute_update(watch_handle(client, program), WatchWorkflow.withdraw_consent, action,
                                                 update_id=update_id,
                                                 missing=f"no running watch for program {program!r}")
    return receipt
