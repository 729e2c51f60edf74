"""Fault injection for contract requests: latency, jitter and transient errors.

Hooks sit at the two points a real fleet can fail: ``before_apply`` (nothing has happened
yet, so the client may safely retry) and ``after_apply`` (the change is made but the
answer may be lost). Faults of the second kind are added by giving ``after_apply`` work to do.
"""

from __future__ import annotations

import asyncio
import random

from pausegate.fleet_service.settings import FaultSettings


class InjectedFaultError(Exception):
    """A transient failure chosen by the fault injector (answered as 503)."""


class FaultInjector:
    def __init__(self, settings: FaultSettings, *, seed: int = 0) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self.injected_errors = 0

    def update(self, settings: FaultSettings) -> None:
        self.settings = settings

    async def before_apply(self) -> None:
        """Per-request delay, then perhaps an error, both before any state is touched."""
        s = self.settings
        delay = s.latency_ms + (self._rng.uniform(0, s.jitter_ms) if s.jitter_ms else 0.0)
        if delay:
            await asyncio.sleep(delay / 1000)
        if s.error_rate and self._rng.random() < s.error_rate:
            self.injected_errors += 1
            raise InjectedFaultError("injected fault: fleet temporarily unavailable")

    async def after_apply(self) -> None:
        """Called once a change is applied and before it is answered; no fault of this kind yet."""
