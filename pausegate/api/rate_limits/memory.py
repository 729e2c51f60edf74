"""The API's bounds on actions, and each actor's rate limit: a token bucket per actor, so a request
over the limit is answered 429 with ``Retry-After`` and counted, not logged one by one."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import structlog

from pausegate.api.errors import Throttled

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ActionLimits:
    """The API's bounds on actions (``create_app(limits=...)``)."""

    rate_per_second: float = 5.0
    """Actions per actor per second, sustained (token bucket refill)."""
    burst: int = 120
    """Actions an actor may send at once (bucket size): a reviewer's script amending in bulk fits."""
    per_actor_queued: int = 100
    """Actions of one actor waiting for one pause; more are answered 429."""
    per_actor_in_flight: int = 1
    """Updates of one actor in flight on one pause: the other slots are always free for everyone else."""
    max_queued: int = 1000
    """Actions waiting for one pause, all actors together; more are answered 503."""
    refused_spacing: float = 0.1
    """Seconds an actor's next action on a pause waits after the workflow refused their last one there."""
    wait_seconds: float = 20.0
    """How long an action may wait for an update slot and for Temporal's capacity before it is answered
    503 with Retry-After (nothing applied); until then a refusal for lack of capacity is retried."""

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.burst < 1 or self.per_actor_in_flight < 1:
            raise ValueError("rate_per_second, burst and per_actor_in_flight must be positive")
        if self.wait_seconds <= 0:
            raise ValueError("wait_seconds must be positive")
        if self.per_actor_queued < 0 or self.max_queued < 0 or self.refused_spacing < 0:
            raise ValueError("queue bounds and refused_spacing must not be negative")


@dataclass
class _Bucket:
    tokens: float
    at: float


class ActionRateLimiter:
    """A token bucket per actor. Refused requests are counted (``throttled``) and summarised in
    the log at most once a minute per actor, so a flood cannot flood the logs either."""

    LOG_EVERY_SECONDS = 60.0

    def __init__(
        self, rate_per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
        max_actors: int = 100_000,
    ) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._clock = clock
        self.max_actors = max_actors
        self._buckets: dict[str, _Bucket] = {}
        self._unlogged: dict[str, tuple[float, int]] = {}
        self.throttled = 0
        """Requests refused for exceeding the rate (a counter for metrics)."""

    async def acquire(self, actor: str) -> None:
        """``take`` as the API calls it (the shared limiter, ``pausegate.state.rate_limit``, asks the database)."""
        self.take(actor)

    def take(self, actor: str) -> None:
        """Spend one token of ``actor``'s, or raise ``Throttled`` (429) saying when one is back."""
        now = self._clock()
        bucket = self._buckets.get(actor)
        if bucket is None:
            if len(self._buckets) >= self.max_actors:
                self._forget_full(now)
            bucket = self._buckets[actor] = _Bucket(tokens=float(self.burst), at=now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        self.refuse(actor, bucket.tokens, now)

    def refuse(self, actor: str, tokens: float, now: float) -> NoReturn:
        """Count and raise the 429 for ``actor``, whose bucket holds ``tokens`` (below one)."""
        self.throttled += 1
        self._note_throttled(actor, now)
        retry_after = max(1, math.ceil((1.0 - tokens) / self.rate))
        raise Throttled(
            f"more than {self.burst} actions at once or {self.rate:g} a second; retry in {retry_after} s",
            retry_after=retry_after,
        )

    def _note_throttled(self, actor: str, now: float) -> None:
        since, count = self._unlogged.get(actor, (-math.inf, 0))
        count += 1
        if now - since >= self.LOG_EVERY_SECONDS:
            log.warning("actions_throttled", actor=actor, count=count, total=self.throttled)
            self._unlogged[actor] = (now, 0)
        else:
            self._unlogged[actor] = (since, count)

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: dropping it bounds memory.
        for actor, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst:
                del self._buckets[actor]
                self._unlogged.pop(actor, None)


