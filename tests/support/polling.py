"""Waiting on a condition in a test: ask until the answer comes, with a limit that only guards against a
hang. Running out is a failure that names what never came; nothing is ever asserted about how long it took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

HANG_GUARD_SECONDS = 180.0


async def polled(ask: Callable[[], Awaitable[T | None]], *, what: str, every: float = 0.1,
                 guard: float = HANG_GUARD_SECONDS) -> T:
    """The first answer of ``ask`` that is not None (or False)."""
    give_up = time.monotonic() + guard
    while not (answer := await ask()):
        if time.monotonic() > give_up:
            raise AssertionError(f"{what} never came")
        await asyncio.sleep(every)
    return answer
