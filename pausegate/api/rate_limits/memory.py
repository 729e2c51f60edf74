"""Each actor's rate limit in this process's memory (one API process: ``api.state = "files"``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pausegate.api.rate_limits.limiter import Throttle


@dataclass
class _Bucket:
    tokens: float
    at: float


class ActionRateLimiter:
    """A token bucket per actor, in memory (a ``RateLimiter``). Refused requests are counted and summarised
    (``Throttle``); buckets that have refilled are dropped when there are ``max_actors``."""

    def __init__(
        self, rate_per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
        max_actors: int = 100_000,
    ) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self.throttle = Throttle(rate_per_second, burst)
        self._clock = clock
        self.max_actors = max_actors
        self._buckets: dict[str, _Bucket] = {}

    @property
    def throttled(self) -> int:
        return self.throttle.throttled

    async def acquire(self, actor: str) -> None:
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
        self.throttle.refuse(actor, bucket.tokens, now)

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: dropping it bounds memory.
        for actor, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst:
                del self._buckets[actor]
                self.throttle.forget(actor)
