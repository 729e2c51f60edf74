"""At most N updates in flight per pause; the rest wait their turn.

Temporal refuses more than 10 in-flight updates on one workflow and degrades badly near the
limit (TEMPORAL-NOTES.md), so the API queues above ``max_in_flight`` (8 by default), and
turns a server refusal for lack of capacity (another API replica, a retry storm) into retries
with backoff. The caller passes one update id for all attempts, so a retry can never apply an
action twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from temporalio.service import RPCError, RPCStatusCode

from pausegate.api.errors import Overloaded

T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = 0
    in_flight: int = 0
    waiting: int = 0


class PauseLimiter:
    """Per-pause concurrency limit with a bounded queue and retries on RESOURCE_EXHAUSTED."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        max_queued: int = 1000,
        attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._slots: dict[str, _Slot] = {}
        self.peaks: dict[str, int] = {}

    def in_flight(self, pause: str) -> int:
        slot = self._slots.get(pause)
        return slot.in_flight if slot else 0

    async def run(self, pause: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` when ``pause`` has a free slot, retrying capacity refusals."""
        slot = self._slots.get(pause)
        if slot is None:
            slot = self._slots[pause] = _Slot(asyncio.Semaphore(self.max_in_flight))
        if slot.waiting >= self.max_queued:
            raise Overloaded(f"{slot.waiting} actions already queued for this pause; retry shortly")
        slot.users += 1
        slot.waiting += 1
        acquired = False
        try:
            async with slot.semaphore:
                slot.waiting -= 1
                acquired = True
                slot.in_flight += 1
                self.peaks[pause] = max(self.peaks.get(pause, 0), slot.in_flight)
                try:
                    return await self._with_retries(pause, call)
                finally:
                    slot.in_flight -= 1
        finally:
            if not acquired:
                slot.waiting -= 1
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(pause, None)

    async def _with_retries(self, pause: str, call: Callable[[], Awaitable[T]]) -> T:
        delay = self.base_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return await call()
            except RPCError as exc:
                if exc.status != RPCStatusCode.RESOURCE_EXHAUSTED:
                    raise
                if attempt == self.attempts:
                    log.warning("update_capacity_exhausted", pause=pause, attempts=attempt)
                    raise Overloaded(
                        "the pause is busy with other actions; nothing was applied, retry shortly",
                        retry_after=max(1, round(self.max_delay)),
                    ) from None
                log.info("update_capacity_retry", pause=pause, attempt=attempt, delay=delay)
                # Jitter keeps queued callers from retrying in lockstep.
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")
