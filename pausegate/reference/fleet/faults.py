"""Fault injection for contract requests.

Hooks sit at the two points a real fleet can fail: ``before_apply`` (nothing has happened
yet, so the client may safely retry) and ``after_apply`` (the change is made but the
answer may be lost). Faults of the first kind: latency, 503s, connection resets, a fleet
that is down for a while, a request held back. Of the second kind: an answer that never
comes (the client times out, or the connection is dropped), an answer held back, and a
batch of which only part was applied. ``injected`` counts every fault by kind, so tests
and the fault report can say how often each one happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter, defaultdict
from typing import Any

from pausegate.models.fleet import AgentResult, AgentResultStatus, AgentState, BatchRequest, BatchResult
from pausegate.reference.fleet.settings import FaultSettings

CHANGING_OPS = frozenset({"switch", "halt", "resume"})
_POLL = 0.05


class InjectedFaultError(Exception):
    """A transient failure chosen by the fault injector (answered as 503)."""


class InjectedResetError(InjectedFaultError):
    """The connection was reset by the injector; no answer reaches the client."""


class FaultInjector:
    def __init__(self, settings: FaultSettings, *, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self.injected_errors = 0
        self.injected: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        # Latency added, per program: (requests delayed, milliseconds in all), read through /admin stats.
        self.delayed: Counter[str] = Counter()
        self.delay_ms: defaultdict[str, float] = defaultdict(float)
        self.settings = settings
        self._down_until = 0.0
        self.update(settings)

    def update(self, settings: FaultSettings) -> None:
        """New faults; a down window starts now."""
        self.settings = settings
        if settings.seed is not None:
            self._rng = random.Random(settings.seed)
        self._down_until = time.monotonic() + settings.down_seconds if settings.down_seconds else 0.0

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def _targets(self, op: str | None) -> bool:
        ops = self.settings.ops
        return not ops or op is None or op in ops

    def _chance(self, rate: float) -> bool:
        return bool(rate) and self._rng.random() < rate

    async def before_apply(self, request: Any = None, op: str | None = None) -> None:
        """Per-request delay, then perhaps an error, a reset or a hold, all before any state is touched."""
        s = self.settings
        if op is not None:
            self.requests[op] += 1
        delay = s.latency_ms + (self._rng.uniform(0, s.jitter_ms) if s.jitter_ms else 0.0)
        if delay:
            program = str(getattr(request, "path_params", {}).get("program", ""))
            self.delayed[program] += 1
            self.delay_ms[program] += delay
            await asyncio.sleep(delay / 1000)
        if self._targets(op):
            if self.down:
                self.injected["down"] += 1
                await _reset(request, "injected fault: fleet down")
            if self._chance(s.reset_rate):
                self.injected["reset"] += 1
                await _reset(request, "injected fault: connection reset")
            if s.hold_before_ms:
                self.injected["hold_before"] += 1
                if await _hold(request, s.hold_before_ms):
                    raise InjectedFaultError("injected fault: the client left while its request was held")
        if s.error_rate and self._rng.random() < s.error_rate:
            self.injected_errors += 1
            self.injected["error"] += 1
            raise InjectedFaultError("injected fault: fleet temporarily unavailable")

    async def after_apply(self, request: Any = None, op: str | None = None) -> None:
        """Called once a change is applied and before it is answered: perhaps hold or lose the answer."""
        s = self.settings
        if not self._targets(op):
            return
        if op in CHANGING_OPS and self._chance(s.ambiguous_rate):
            self.injected["ambiguous"] += 1
            if s.ambiguous_mode == "reset":
                await _reset(request, "injected fault: applied, then the connection dropped")
            await _hold(request, s.ambiguous_hang_ms)
            raise InjectedFaultError("injected fault: applied, answered too late")
        if s.hold_after_ms:
            self.injected["hold_after"] += 1
            await _hold(request, s.hold_after_ms)

    def split_batch(self, op: str, body: BatchRequest) -> tuple[BatchRequest, list[str]]:
        """The part of a batch the fleet will apply, and the ids it withholds (a partial batch)."""
        s = self.settings
        if not self._targets(op) or len(body.agent_ids) < 2 or not self._chance(s.partial_rate):
            return body, []
        self.injected["partial"] += 1
        keep = max(1, min(len(body.agent_ids) - 1, int(len(body.agent_ids) * s.partial_fraction)))
        # The applied part is a different request: a retry of the whole batch must not be refused
        # as a reuse of its idempotency key.
        part = body.model_copy(update={"agent_ids": body.agent_ids[:keep],
                                       "idempotency_key": f"{body.idempotency_key}/partial"})
        return part, body.agent_ids[keep:]

    def answer_batch(self, result: BatchResult, withheld: list[str]) -> BatchResult:
        """The answer to a partial batch: the withheld agents as pending, or left out."""
        if not withheld or self.settings.partial_mode == "omit":
            return result
        pending = [AgentResult(agent_id=a, status=AgentResultStatus.PENDING, state=AgentState.COLLECTING)
                   for a in withheld]
        return result.model_copy(update={"results": [*result.results, *pending]})


def _transport(request: Any) -> asyncio.Transport | None:
    """The connection under an ASGI request served by uvicorn (None in-process)."""
    receive = getattr(request, "receive", None)
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def _reset(request: Any, message: str) -> None:
    """Reset the client's connection (RST, no answer); in-process clients get a 503 instead."""
    transport = _transport(request)
    if transport is not None and not transport.is_closing():
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # Let the server see the connection go before the handler unwinds.
        for _ in range(3):
            await asyncio.sleep(0)
    raise InjectedResetError(message)


async def _hold(request: Any, ms: float) -> bool:
    """Wait ``ms`` or until the client disconnects; True when it did."""
    deadline = time.monotonic() + ms / 1000
    is_disconnected = getattr(request, "is_disconnected", None)
    while (left := deadline - time.monotonic()) > 0:
        if is_disconnected is not None and await is_disconnected():
            return True
        await asyncio.sleep(min(_POLL, left))
    return False
