"""What every step of a pause workflow shares: activity options, failure text, bounded waits, where a
message arrived."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pausegate.errors import non_retryable_error_types
    from pausegate.logging import redact
    from pausegate.models.seals import SealedFor
    from pausegate.models.state import Tuning


URGENT_SUFFIX = "-urgent"

ADDRESSED_MESSAGES = "addressed-messages"
"""Patch id: from here on a start or an update is taken only with the address it was sealed for
(``pausegate.models.seals``); runs recorded before it (the stored histories) take messages as they come."""


def urgent_queue(tuning: Tuning) -> str:
    """The task queue of the steps that stop harm: configured, else the workflow's own queue + ``-urgent``."""
    return tuning.urgent_task_queue or workflow.info().task_queue + URGENT_SUFFIX


def activity_options(
    tuning: Tuning, start_to_close: timedelta, *, attempts: int = 5, urgent: bool = False
) -> workflow.ActivityConfig:
    """Every activity heartbeats (in the background while it waits on a target), so a dead worker's
    activity is retried within seconds, not at its start-to-close timeout; errors no retry can mend
    (the final classes of ``pausegate.errors``) are not retried.

    ``urgent`` steps (those that stop harm: the program switch, agent halts, revocation) run on the
    urgent task queue, served by a worker that runs nothing else, so they never wait behind the
    steps that prove the pause (scope, verification, sealing, who saw what)."""
    config = workflow.ActivityConfig(
        start_to_close_timeout=start_to_close,
        heartbeat_timeout=timedelta(seconds=tuning.activity_heartbeat_seconds),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=attempts,
            non_retryable_error_types=non_retryable_error_types(),
        ),
    )
    if urgent:
        config["task_queue"] = urgent_queue(tuning)
    return config


def error_text(exc: BaseException) -> str:
    """The root cause of an activity failure, without stack traces (they may quote targets)."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    # Errors the activity boundary did not shape (the SDK's own) are redacted here too: this text
    # goes to the timeline and to history.
    if isinstance(cause, ApplicationError) and cause.type:
        return redact(f"{cause.type}: {cause.message}")[:500]
    return redact(str(cause))[:500]


async def wait_until(condition: Callable[[], bool], timeout: timedelta | None) -> bool:
    """Wait for ``condition`` up to ``timeout``; False when the time ran out."""
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except TimeoutError:
        return False
    return True


def arrived_at(*, update: bool) -> SealedFor:
    """Where the message being handled arrived: this namespace and workflow, and for an update the pause
    (its chain's first run, kept by continue-as-new) and the update id it was sent under."""
    info = workflow.info()
    if not update:
        return SealedFor(namespace=info.namespace, workflow_id=info.workflow_id)
    current = workflow.current_update_info()
    return SealedFor(namespace=info.namespace, workflow_id=info.workflow_id, pause_chain=info.first_execution_run_id,
                     update_id=current.id if current is not None else None)
