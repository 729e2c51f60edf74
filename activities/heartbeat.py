"""Heartbeats that prove the worker is alive while an activity waits on a slow target.

Activities run with short heartbeat timeouts so that a killed worker's activity is retried within
seconds. A live activity waiting on one slow call (a 5-second fleet request, a long seal) must not
be mistaken for a dead one, so it heartbeats in the background at a third of the timeout, carrying
the latest progress it reported.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from temporalio import activity

from activities.errors import as_application_errors


class Progress:
    """The latest progress an activity reported; sent with every heartbeat."""

    def __init__(self) -> None:
        self.details: tuple[Any, ...] = ()

    def report(self, *details: Any) -> None:
        self.details = details
        activity.heartbeat(*details)


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[Progress]:
    """Heartbeat in the background for the duration of the block (no-op without a heartbeat timeout)."""
    progress = Progress()
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        yield progress
        return
    interval = max(0.1, timeout.total_seconds() / 3)

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat(*progress.details)

    task = asyncio.create_task(beat())
    try:
        yield progress
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Progress]:
    """The frame of every activity: background heartbeats, and the project's errors as ApplicationErrors."""
    with as_application_errors():
        async with heartbeating() as progress:
            yield progress
