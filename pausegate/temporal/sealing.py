"""Addressing the messages a client sends a pause (``pausegate.models.seals``).

A start is addressed to the namespace and the workflow id. An update is addressed to the pause too (the
first run of its chain, read from Temporal before sending) and to the update id it is sent under; the
handle it is sent through is pinned to that chain, so Temporal itself refuses it if the program's pause
was replaced meanwhile.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from pausegate.errors import PauseNotFound
from pausegate.models.seals import SealedFor, SealedMessage

M = TypeVar("M", bound=SealedMessage)


def new_update_id() -> str:
    """An update id for a request that brought none (the SDK's own default is a random uuid too)."""
    return str(uuid.uuid4())


def addressed_start(client: Client, message: M, workflow_id: str) -> M:
    """``message`` (a start's input) addressed to ``workflow_id`` in the client's namespace."""
    return message.model_copy(update={"sealed_for": SealedFor(namespace=client.namespace, workflow_id=workflow_id)})


async def addressed_update(client: Client, workflow_id: str, message: M, update_id: str, *, missing: str
                           ) -> tuple[WorkflowHandle[Any, Any], M]:
    """The handle of the pause open under ``workflow_id`` pinned to its chain, and ``message`` addressed to
    that pause and ``update_id``. ``PauseNotFound(missing)`` when Temporal knows no such workflow."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PauseNotFound(missing) from None
        raise
    # the first run of the chain: continue-as-new keeps it, a new pause of the program has its own
    chain = described.raw_description.workflow_execution_info.first_run_id or described.run_id
    sealed_for = SealedFor(namespace=client.namespace, workflow_id=workflow_id, pause_chain=chain,
                           update_id=update_id)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id, first_execution_run_id=chain)
    return handle, message.model_copy(update={"sealed_for": sealed_for})
