"""Temporal's refusals for lack of capacity, and the retries that turn them into backpressure, not failure.

Whatever meets Temporal's refusal for lack of capacity (RESOURCE_EXHAUSTED: a replica that lost its
update slot's lease, something else sending updates; an update aborted while the server shed load) is
retried with jittered, doubling backoff, under one update id for all attempts so that a retry can never
apply an action twice, until the action's wait budget is spent: then 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from temporalio.service import RPCError, RPCStatusCode

from pausegate.api.errors import Overloaded

T = TypeVar("T")

log = structlog.get_logger(__name__)


def capacity_refusal(exc: RPCError) -> bool:
    """Temporal turned the update away for lack of capacity, applying nothing: too many in flight
    (RESOURCE_EXHAUSTED); aborted by the server while it shed load ("workflow update was aborted",
    which the notes measured for about half the updates of a workflow flooded past its limit); or
    refused while the workflow's last task had timed out on an overloaded worker and waits to be
    retried ("Workflow Task in failed state"). All are safe to send again under the same update id."""
    if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return True
    if "Workflow Task in failed state" in exc.message:  # the server's WorkflowNotReady: nothing was applied
        return True
    return exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.ABORTED) and "update was aborted" in exc.message


async def until_capacity(
    pause: str, call: Callable[[], Awaitable[T]], deadline: float, *, base_delay: float, max_delay: float,
    attempts: int | None, retried: Callable[[], None],
) -> T:
    """``call``'s result, retrying capacity refusals with backoff (``retried`` told of each) until
    ``deadline`` (loop time) or ``attempts``; then ``Overloaded`` (503, nothing applied)."""
    loop = asyncio.get_running_loop()
    delay = base_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except RPCError as exc:
            if not capacity_refusal(exc):
                raise
            # Jitter keeps queued callers from retrying in lockstep.
            pause_for = delay * (0.5 + random.random())
            if loop.time() + pause_for > deadline or (attempts is not None and attempt >= attempts):
                log.warning("update_capacity_exhausted", pause=pause, attempts=attempt)
                raise Overloaded(
                    "the pause stayed busy with other actions; nothing was applied, retry shortly",
                    retry_after=max(1, round(max_delay)),
                ) from None
            retried()
            log.info("update_capacity_retry", pause=pause, attempt=attempt, delay=round(pause_for, 3),
                     status=exc.status.name if exc.status is not None else None)
            await asyncio.sleep(pause_for)
            delay = min(delay * 2, max_delay)
