"""How many actions reach a pause, and whose: a per-actor rate limit and a fair queue per pause.

Temporal refuses more than 10 in-flight updates on one workflow and degrades badly near the
limit (TEMPORAL-NOTES.md), so the API keeps at most ``max_in_flight`` (8 by default) updates in
flight per pause and queues the rest. The queue is fair: each actor has a sub-queue of their own,
bounded, and a free slot goes to the next actor in turn (round robin), never to whoever sent most.
No actor holds more than ``per_actor_in_flight`` slots (one by default), so another actor's action
starts at once however many one actor has queued. One by default because a workflow handles its
updates one task at a time: every update in flight delays everyone else's a little, and a person
(or their script) gains little from sending a second before the first is answered. For the same
reason an actor whose action the workflow has just refused waits ``refused_spacing`` seconds before
their next one on that pause starts: refusals cannot keep the workflow busy (a person retrying by
hand never notices the tenth of a second).

With several API replicas (``api.state = "postgres"``), each update also holds one of the pause's slots
in the shared database (``pausegate.api.update_slots``) while in flight, so the limit holds for all
replicas together. Whatever still meets Temporal's refusal for lack of capacity is backpressure, not
failure: it is retried with backoff (``pausegate.api.capacity``). Every action has a wait budget
(``wait_budget`` seconds, queue, slot and retries together); only when it is spent is the caller
answered 503 with Retry-After, and nothing was applied.

In front of the queue, each actor's actions are rate limited (``pausegate.api.rate_limits``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pausegate.api.capacity import capacity_refusal, until_capacity
from pausegate.api.errors import Overloaded, Throttled
from pausegate.errors import ActionRefused

if TYPE_CHECKING:
    from pausegate.api.update_slots import Lease, SharedSlots

__all__ = ["PauseLimiter", "capacity_refusal"]

T = TypeVar("T")


@dataclass
class _Slot:
    """One pause's slots and queue."""

    pause: str
    in_flight: int = 0
    by_actor: dict[str, int] = field(default_factory=dict)
    queues: dict[str, deque[asyncio.Future[None]]] = field(default_factory=dict)
    turn: deque[str] = field(default_factory=deque)
    """Actors with queued actions, in the order they are served (round robin)."""
    waiting: int = 0
    users: int = 0
    timer: asyncio.TimerHandle | None = None
    """Dispatches again when the earliest refused actor's spacing ends."""


class PauseLimiter:
    """Per-pause concurrency limit with a fair, bounded queue and retries on RESOURCE_EXHAUSTED."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        max_queued: int = 1000,
        per_actor_queued: int = 100,
        per_actor_in_flight: int = 1,
        refused_spacing: float = 0.1,
        wait_budget: float = 20.0,
        attempts: int | None = None,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedSlots | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.per_actor_queued = per_actor_queued
        if per_actor_in_flight < 1:
            raise ValueError("per_actor_in_flight must be at least 1")
        self.per_actor_in_flight = min(max_in_flight, per_actor_in_flight)
        self.refused_spacing = refused_spacing
        self._clock = clock
        self._spaced: dict[tuple[str, str], float] = {}
        """(pause, actor) -> when their next action may start, after a refusal."""
        if wait_budget <= 0:
            raise ValueError("wait_budget must be positive")
        self.wait_budget = wait_budget
        self.attempts = attempts
        """At most this many attempts per action (None: as many as the wait budget allows)."""
        self.shared = shared
        """The pause's slots shared with the other replicas (None: this process is the only one)."""
        self.capacity_retries = 0
        """Updates Temporal refused for lack of capacity and that were retried (a counter for metrics)."""
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._slots: dict[str, _Slot] = {}
        self.peaks: dict[str, int] = {}
        self.refused_queue_full = 0
        """Requests refused because their actor's queue (429) or the pause's queue (503) was full."""

    def in_flight(self, pause: str) -> int:
        slot = self._slots.get(pause)
        return slot.in_flight if slot else 0

    def queued(self, pause: str, actor: str | None = None) -> int:
        """Actions waiting for ``pause`` (of ``actor`` only, if given)."""
        slot = self._slots.get(pause)
        if slot is None:
            return 0
        if actor is None:
            return slot.waiting
        return len(slot.queues.get(actor, ()))

    async def run(self, pause: str, actor: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` (an action of ``actor``) when ``pause`` has a slot for it, retrying capacity refusals."""
        slot = self._slots.get(pause)
        if slot is None:
            slot = self._slots[pause] = _Slot(pause)
        queue = slot.queues.get(actor)
        if queue is not None and len(queue) >= self.per_actor_queued:
            self.refused_queue_full += 1
            raise Throttled(f"{len(queue)} of your actions already wait for this pause; retry shortly")
        if slot.waiting >= self.max_queued:
            self.refused_queue_full += 1
            raise Overloaded(f"{slot.waiting} actions already queued for this pause; retry shortly")
        deadline = asyncio.get_running_loop().time() + self.wait_budget
        slot.users += 1
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._acquire(slot, actor)
            except TimeoutError:
                raise Overloaded(
                    f"no update slot of this pause came free within {self.wait_budget:g} s; nothing was applied, "
                    "retry shortly", retry_after=2,
                ) from None
            self.peaks[pause] = max(self.peaks.get(pause, 0), slot.in_flight)
            lease: Lease | None = None
            try:
                if self.shared is not None:
                    lease = await self.shared.acquire(pause, actor, deadline)
                return await self._with_retries(pause, call, deadline)
            except ActionRefused:
                # Before the slot is released: the actor's next action must see the spacing.
                self._space(pause, actor)
                raise
            finally:
                # Local first: it cannot fail, and a second cancellation arriving during the shared
                # release must not leave this replica's slot taken (the shared one is released shielded).
                self._release(slot, actor)
                if lease is not None and self.shared is not None:
                    await self.shared.release(lease)
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(pause, None)

    async def _acquire(self, slot: _Slot, actor: str) -> None:
        if not slot.waiting and self._may_start(slot, actor):
            self._start(slot, actor)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = slot.queues.get(actor)
        if queue is None:
            queue = slot.queues[actor] = deque()
            slot.turn.append(actor)
        queue.append(granted)
        slot.waiting += 1
        self._dispatch(slot)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                # Granted just as the caller went away: hand the slot on.
                self._release(slot, actor)
            else:
                self._forget(slot, actor, granted)
            raise

    def _may_start(self, slot: _Slot, actor: str) -> bool:
        return (
            slot.in_flight < self.max_in_flight
            and slot.by_actor.get(actor, 0) < self.per_actor_in_flight
            and self._spaced_until(slot.pause, actor, self._clock()) is None
        )

    def _space(self, pause: str, actor: str) -> None:
        if self.refused_spacing <= 0:
            return
        now = self._clock()
        if len(self._spaced) >= 10_000:  # bounded: spacings that ended are the same as none
            self._spaced = {k: t for k, t in self._spaced.items() if t > now}
        self._spaced[(pause, actor)] = now + self.refused_spacing

    def _spaced_until(self, pause: str, actor: str, now: float) -> float | None:
        until = self._spaced.get((pause, actor))
        if until is None:
            return None
        if until <= now:
            del self._spaced[(pause, actor)]
            return None
        return until

    def _start(self, slot: _Slot, actor: str) -> None:
        slot.in_flight += 1
        slot.by_actor[actor] = slot.by_actor.get(actor, 0) + 1

    def _release(self, slot: _Slot, actor: str) -> None:
        slot.in_flight -= 1
        left = slot.by_actor[actor] - 1
        if left:
            slot.by_actor[actor] = left
        else:
            del slot.by_actor[actor]
        self._dispatch(slot)

    def _forget(self, slot: _Slot, actor: str, granted: asyncio.Future[None]) -> None:
        queue = slot.queues.get(actor)
        if queue is not None and granted in queue:
            queue.remove(granted)
            slot.waiting -= 1
            if not queue:
                del slot.queues[actor]
                slot.turn.remove(actor)

    def _dispatch(self, slot: _Slot) -> None:
        """Hand free slots out, one actor at a time in turn, skipping actors at their own limit or
        waiting out a refusal's spacing (then dispatching again when the earliest spacing ends)."""
        now = self._clock()
        wake: float | None = None
        passed = 0
        while slot.in_flight < self.max_in_flight and slot.turn and passed < len(slot.turn):
            actor = slot.turn[0]
            slot.turn.rotate(-1)
            if slot.by_actor.get(actor, 0) >= self.per_actor_in_flight:
                passed += 1
                continue
            until = self._spaced_until(slot.pause, actor, now)
            if until is not None:
                wake = until if wake is None else min(wake, until)
                passed += 1
                continue
            queue = slot.queues[actor]
            granted = queue.popleft()
            slot.waiting -= 1
            if not queue:
                del slot.queues[actor]
                slot.turn.remove(actor)
            if granted.done():  # its caller went away (cancelled) and has not been forgotten yet
                continue
            passed = 0
            self._start(slot, actor)
            granted.set_result(None)
        if wake is not None:
            self._wake_at(slot, wake, now)

    def _wake_at(self, slot: _Slot, when: float, now: float) -> None:
        loop = asyncio.get_running_loop()
        if slot.timer is not None:
            if slot.timer.when() <= loop.time() + (when - now):
                return
            slot.timer.cancel()

        def woken() -> None:
            slot.timer = None
            self._dispatch(slot)

        slot.timer = loop.call_later(max(0.0, when - now), woken)

    async def _with_retries(self, pause: str, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        def retried() -> None:
            self.capacity_retries += 1

        return await until_capacity(pause, call, deadline, base_delay=self.base_delay, max_delay=self.max_delay,
                                    attempts=self.attempts, retried=retried)
