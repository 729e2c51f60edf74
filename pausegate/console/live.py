"""Live pages: one poller reads each watched pause's status, every open page is told when it changes.

However many people watch a program, its status is queried once per interval (a query costs the
workflow nothing and about 4 ms here); each page then renders what its own viewer may see. The
poller runs only while some page watches, and stops when the last one leaves.

Pages receive server-sent events (``text/event-stream``): one event per changed fragment, whose data
is HTML rendered and escaped by the same templates as the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable

import structlog
from temporalio.client import Client

from pausegate.errors import PauseNotFound
from pausegate.models.state import PauseState
from pausegate.temporal.pauses import read_status

log = structlog.get_logger(__name__)

Snapshot = dict[str, PauseState | None]


class StatusWatch:
    """Statuses of the programs some page watches, re-read every ``interval`` seconds."""

    def __init__(self, client: Client, *, interval: float = 0.3) -> None:
        self.client = client
        self.interval = interval
        self._latest: dict[str, PauseState | None] = {}
        self._shown: dict[str, str] = {}
        self._versions: Counter[str] = Counter()
        self._interest: Counter[str] = Counter()
        self._tick = asyncio.Event()
        self._rounds_started = 0
        self._completed_round = 0
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watching(self, programs: Iterable[str]) -> AsyncIterator[Watcher]:
        """Watch ``programs`` for the duration of the block."""
        names = sorted(set(programs))
        self._interest.update(names)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="console-status-watch")
        try:
            yield Watcher(self, names, after_round=self._rounds_started)
        finally:
            self._interest.subtract(names)
            self._interest = +self._interest  # drop programs nobody watches
            for name in names:
                if name not in self._interest:  # what nobody watches goes stale: forget it
                    self._latest.pop(name, None)
                    self._shown.pop(name, None)
                    self._versions.pop(name, None)
            if not self._interest and self._task is not None:
                # Forgotten before awaiting it: a page arriving meanwhile then starts a fresh poller.
                task, self._task = self._task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _read(self, program: str) -> None:
        try:
            status: PauseState | None = await read_status(self.client, program)
        except PauseNotFound:
            status = None
        except Exception as exc:  # Temporal briefly away: pages keep what they show and the poller tries again
            log.warning("console_status_unreadable", program=program, error=str(exc)[:200])
            return
        shown = status.model_dump_json() if status is not None else ""
        if self._shown.get(program) != shown or program not in self._latest:
            self._shown[program] = shown
            self._latest[program] = status
            self._versions[program] += 1

    async def _poll(self) -> None:
        while self._interest:
            self._rounds_started += 1
            round_number = self._rounds_started
            programs = list(self._interest)
            await asyncio.gather(*(self._read(p) for p in programs))
            self._completed_round = round_number
            # Wake every waiting page: set this round's event, and give the next round a fresh one.
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()
            # Pacing of the poll itself (how fresh a page is), not a wait for some other task.
            await asyncio.sleep(self.interval)

    def _versions_of(self, programs: list[str]) -> tuple[int, ...]:
        return tuple(self._versions[p] for p in programs)


class Watcher:
    """One page's view of the watch: waits for the next change of its programs."""

    def __init__(self, watch: StatusWatch, programs: list[str], *, after_round: int) -> None:
        self.watch = watch
        self.programs = programs
        # The first answer comes from a round that started after this page subscribed, so it is never
        # older than what the page rendered just before it connected.
        self._after_round = after_round
        self._seen: tuple[int, ...] | None = None

    async def next(self, timeout: float) -> Snapshot | None:
        """The programs' statuses once any of them changed since the last call (the first call: once
        each has been read after this page subscribed), or None after ``timeout`` seconds without a change."""
        watch = self.watch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            versions = watch._versions_of(self.programs)
            fresh = watch._completed_round > self._after_round and all(p in watch._latest for p in self.programs)
            if fresh and versions != self._seen:
                self._seen = versions
                return {p: watch._latest.get(p) for p in self.programs}
            left = deadline - loop.time()
            if left <= 0:
                return None
            # An Event, not a Condition: cancelling a wait on it (the timeout, a closed stream) needs no lock back.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch._tick.wait(), left)
