"""Sending a Workflow Update from outside the workflow, and the one translation of its failure.

A validator or handler that says no raises an ``ApplicationError`` whose type is the refusal code
(``pausegate.errors.ActionRefused.code``); the client receives it wrapped in ``WorkflowUpdateFailedError``.
Here, and only here, it becomes ``ActionRefused`` again, and a workflow Temporal does not know becomes
``PauseNotFound``. Every other failure (Temporal unreachable, an update timed out) is raised as it is.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from pausegate.errors import ActionRefused, PauseNotFound

REFUSED = "refused"
"""The code of a refusal that carries none (a failure that is not an ``ApplicationError`` with a type)."""


def refusal_of(exc: WorkflowUpdateFailedError) -> ActionRefused:
    """The refusal a failed update stands for: the ``ApplicationError``'s type and message."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return ActionRefused(cause.type or REFUSED, cause.message)
    return ActionRefused(REFUSED, str(cause))


async def execute_update(handle: WorkflowHandle[Any, Any], update: Any, arg: Any, *, update_id: str | None,
                         missing: str) -> Any:
    """Send ``update`` with ``arg`` to ``handle``'s workflow and wait for its result.

    Raises ``ActionRefused`` when the workflow refuses it, ``PauseNotFound(missing)`` when there is no such
    running workflow. ``update_id`` makes retries safe: Temporal applies an update id at most once per run.
    """
    try:
        return await handle.execute_update(update, arg, id=update_id)
    except WorkflowUpdateFailedError as exc:
        raise refusal_of(exc) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PauseNotFound(missing) from None
        raise
