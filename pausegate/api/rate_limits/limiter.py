"""What a rate limiter offers the API (``RateLimiter``), and the refusal every limiter answers with (``Throttle``)."""

from __future__ import annotations

import math
from typing import NoReturn, Protocol

import structlog

from pausegate.api.errors import Throttled

log = structlog.get_logger(__name__)


class RateLimiter(Protocol):
    """A token bucket per actor."""

    @property
    def throttled(self) -> int:
        """Requests refused for exceeding the rate (a counter for metrics)."""
        ...

    async def acquire(self, actor: str) -> None:
        """Spend one of ``actor``'s tokens, or raise ``Throttled`` (429) saying when one is back."""
        ...


class Throttle:
    """The refusal of a request over the rate: counted (``throttled``), summarised in the log at most once
    a minute per actor (so a flood cannot flood the logs either), answered 429 with ``Retry-After``."""

    LOG_EVERY_SECONDS = 60.0

    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self.throttled = 0
        self._unlogged: dict[str, tuple[float, int]] = {}

    def refuse(self, actor: str, tokens: float, now: float) -> NoReturn:
        """Count and raise the 429 for ``actor``, whose bucket holds ``tokens`` (below one)."""
        self.throttled += 1
        self._note(actor, now)
        # A refused bucket holds between 0 and 1 token; whatever a store handed back, the wait stays
        # at most one token's refill.
        held = tokens if 0.0 <= tokens < 1.0 else 0.0
        retry_after = max(1, math.ceil((1.0 - held) / self.rate))
        raise Throttled(
            f"more than {self.burst} actions at once or {self.rate:g} a second; retry in {retry_after} s",
            retry_after=retry_after,
        )

    def forget(self, actor: str) -> None:
        self._unlogged.pop(actor, None)

    def _note(self, actor: str, now: float) -> None:
        since, count = self._unlogged.get(actor, (-math.inf, 0))
        count += 1
        if now - since >= self.LOG_EVERY_SECONDS:
            log.warning("actions_throttled", actor=actor, count=count, total=self.throttled)
            self._unlogged[actor] = (now, 0)
        else:
            self._unlogged[actor] = (since, count)
