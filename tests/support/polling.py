"""Waiting on a condition in a test: ask until the answer comes, with a limit that only guards against a
hang. Running out is a failure that names what never came (and the last answer seen); nothing is ever asserted
about how long it took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

HANG_GUARD_SECONDS = 180.0


async def polled(ask: Callable[[], Awaitable[T | None]], *, what: str, until: Callable[[T], object] | None = None,
                 every: float = 0.1, guard: float = HANG_GUARD_SECONDS) -> T:
    """The first answer of ``ask`` that is not None (or False); given ``until``, the first answer it accepts.
    The failure after ``guard`` seconds names ``what`` and shows the last answer, so a hang explains itself."""
    give_up = time.monotonic() + guard
    while True:
        answer = await ask()
        if answer is not None and (until(answer) if until is not None else answer):
            return answer
        if time.monotonic() > give_up:
            last = "" if answer is None else f"; last answer {answer!r:.2000}"
            raise AssertionError(f"{what} never came{last}")
        await asyncio.sleep(every)
