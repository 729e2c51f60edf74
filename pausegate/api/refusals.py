"""Refusals are recorded, but a caller cannot turn them into load (DESIGN.md, "Trust model").

Every refusal the API answers is recorded once, in one of two places:

- the pause's timeline (the workflow's ``record_refusal`` signal), for a caller who holds a role in
  the program's runbook: the API sends at most one signal per (program, actor, action) per window
  (a minute), carrying the count of refusals since the last one, so a flood adds at most one
  history event a minute per key; the workflow itself merges refusals of one minute into one
  timeline entry;
- the API's refusal log (``refusal_log``), for a caller with no role in the program (who must get no
  write into its workflow), for a refusal no open pause can hold, and when the signal fails: at most
  one line per (actor, program, action) per window, with the count.

The first refusal of a key is recorded at once, so the person (and whoever watches the timeline)
sees it while it matters; refusals after it within the window are counted and recorded together
when the window ends (a background task started in the app's lifespan) or with the next refusal
after it, whichever comes first. Stopping the recorder writes what is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from temporalio.client import Client
from temporalio.service import RPCError

from pausegate.api.refusal_log import RefusalLog
from pausegate.models.limits import MAX_NOTE
from pausegate.models.updates import RefusalInput
from pausegate.temporal.pauses import pause_handle
from workflows.pause import PauseWorkflow

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 60.0
"""At most one record per key per this many seconds (the workflow merges refusals per minute too)."""

MAX_ACTION = 100  # RefusalInput.action's bound


@dataclass(frozen=True)
class Refusal:
    """One refused request, as recorded: who, on which program (None: API-wide), what, and why."""

    actor: str
    roles: tuple[str, ...]
    program: str | None
    action: str
    reason: str

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.program, self.actor, self.action)


Emit = Callable[[Refusal, int], Awaitable[None]]


@dataclass
class _Window:
    opened: float
    latest: Refusal
    pending: int = 0


class Coalescer:
    """Counts refusals per key; hands ``emit`` at most one (refusal, count) per key per window."""

    def __init__(
        self, emit: Emit, *, name: str, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._emit = emit
        self.name = name
        self.window = window
        self._clock = clock
        self._windows: dict[tuple[str | None, str, str], _Window] = {}
        self._wake = asyncio.Event()
        self.emitted = 0
        """Records handed to ``emit`` (signals sent, lines appended): what the coalescing bounds."""
        self.refusals = 0
        """Refusals counted (every one, recorded or pending)."""

    @property
    def pending(self) -> int:
        """Refusals counted but not recorded yet."""
        return sum(w.pending for w in self._windows.values())

    async def add(self, refusal: Refusal, count: int = 1) -> None:
        """Count ``count`` refusals; record them now if no record of their key is in this window."""
        self.refusals += count
        now = self._clock()
        window = self._windows.get(refusal.key)
        if window is not None and now - window.opened < self.window:
            window.pending += count
            window.latest = refusal
            return
        # No record in this window (none yet, or the window ended and the sweep has not run yet):
        # record now, with whatever the ended window still held.
        count += window.pending if window is not None else 0
        self._windows[refusal.key] = _Window(opened=now, latest=refusal)
        self._wake.set()
        await self._record(refusal, count)

    def next_due(self) -> float | None:
        """When the earliest open window ends (clock time), or None when none is open."""
        return min((w.opened + self.window for w in self._windows.values()), default=None)

    async def sweep(self) -> None:
        """Record what ended windows hold (a new window opens with that record); forget idle keys."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if now - window.opened < self.window:
                continue
            if window.pending:
                count, window.pending, window.opened = window.pending, 0, now
                await self._record(window.latest, count)
            else:
                del self._windows[key]

    async def flush(self) -> None:
        """Record every pending count now (stopping; tests that must see every count)."""
        for window in list(self._windows.values()):
            if window.pending:
                count, window.pending = window.pending, 0
                await self._record(window.latest, count)

    async def run(self) -> None:
        """Sweep as each window ends; sleep while none is open."""
        while True:
            self._wake.clear()
            due = self.next_due()
            if due is None:
                await self._wake.wait()
                continue
            await asyncio.sleep(max(0.0, due - self._clock()))
            await self.sweep()

    async def _record(self, refusal: Refusal, count: int) -> None:
        self.emitted += 1
        # One line per record, not per refusal: the log stays as bounded as the records.
        log.info("refusal_recorded", sink=self.name, program=refusal.program, actor=refusal.actor,
                 action=refusal.action, count=count)
        try:
            await self._emit(refusal, count)
        except Exception as exc:  # a record that cannot be written must not turn a 4xx into a 500
            log.error("refusal_not_recorded", sink=self.name, program=refusal.program, actor=refusal.actor,
                      action=refusal.action, count=count, error=str(exc)[:500])


class RefusalRecorder:
    """Where the API's refusals go: a pause's timeline (coalesced signals) or the refusal log (coalesced lines)."""

    def __init__(
        self,
        client: Client | None,
        refusal_log: Callable[[], RefusalLog],
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._refusal_log = refusal_log
        self.timeline = Coalescer(self._signal, name="timeline", window=window, clock=clock)
        self.log = Coalescer(self._append, name="refusal_log", window=window, clock=clock)
        self._tasks: list[asyncio.Task[None]] = []
        # Told of every refusal as it happens, with where it is recorded (the API's metrics count them).
        self.observer: Callable[[Refusal, str], None] | None = None

    def start(self) -> None:
        """Start the sweeps (idempotent; also started by the first refusal)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(c.run(), name=f"refusals-{c.name}") for c in (self.timeline, self.log)]

    async def stop(self) -> None:
        """Stop the sweeps and record what is pending (timeline first: a failed signal lands in the log)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush()

    async def flush(self) -> None:
        """Record every pending count now."""
        await self.timeline.flush()
        await self.log.flush()

    async def in_timeline(self, refusal: Refusal) -> None:
        """A refusal of a caller with a role in the program: into the pause's timeline (or the log)."""
        self.start()
        if self.observer is not None:
            self.observer(refusal, "timeline")
        await self.timeline.add(refusal)

    async def in_log(self, refusal: Refusal) -> None:
        """A refusal no pause may hold (a caller with no role in the program, no open pause, API-wide)."""
        self.start()
        if self.observer is not None:
            self.observer(refusal, "refusal_log")
        await self.log.add(refusal)

    async def _signal(self, refusal: Refusal, count: int) -> None:
        if refusal.program is None or self._client is None:
            await self.log.add(refusal, count)
            return
        try:
            await pause_handle(self._client, refusal.program).signal(
                PauseWorkflow.record_refusal,
                RefusalInput(actor=refusal.actor, action=refusal.action[:MAX_ACTION],
                             reason=refusal.reason[:MAX_NOTE], count=count),
            )
        except RPCError as exc:
            # No open pause to hold it (none yet, ended), or Temporal unreachable.
            log.info("refusal_to_log", program=refusal.program, actor=refusal.actor, action=refusal.action,
                     count=count, pause_status=str(exc.status))
            await self.log.add(refusal, count)

    async def _append(self, refusal: Refusal, count: int) -> None:
        refusal_log = self._refusal_log()
        await asyncio.to_thread(
            refusal_log.append, actor=refusal.actor, roles=list(refusal.roles), program=refusal.program,
            action=refusal.action, reason=refusal.reason, count=count,
        )
