"""What collecting agents capture, written for real into the program's PostgreSQL tables.

Each tick samples collecting agents and writes their keystrokes and mouse events in one
transaction. The write is registered as in flight on the program so that a halt waits for
it (``Program.settle``), and just before committing the tick checks every sampled agent is
still collecting; if one was halted meanwhile, the whole tick is rolled back. Together this
means no row of an agent commits after its halt was confirmed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import structlog

from pausegate.reference.fleet.agents import AgentRecord
from pausegate.reference.fleet.collection import DATA_TYPES
from pausegate.reference.fleet.faults import FaultInjector
from pausegate.reference.fleet.fleet import InFlightWrite, Program

log = structlog.get_logger("pausegate.reference.fleet.telemetry")

INSERT_KEYSTROKE = (
    "INSERT INTO telemetry.keystrokes"
    " (agent_id, employee, captured_at, key_code, typed_content, window_title)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
INSERT_MOUSE = (
    "INSERT INTO telemetry.mouse_events (agent_id, employee, captured_at, x, y, button)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)

_WORDS = (
    "quarterly",
    "password",
    "salary",
    "meeting",
    "draft",
    "offer",
    "review",
    "customer",
    "hello",
    "invoice",
)
_WINDOWS = ("Mail", "Chat", "Spreadsheet", "Terminal", "Browser", "HR portal")
_BUTTONS = ("left", "right", None)

KeystrokeRow = tuple[str, str, datetime, int | None, str | None, str | None]
MouseRow = tuple[str, str, datetime, int | None, int | None, str | None]
KEYSTROKE_TYPES = frozenset({"key_codes", "typed_content", "window_titles"})
MOUSE_TYPES = frozenset({"mouse_positions", "mouse_buttons"})


class TelemetrySink:
    """One PostgreSQL connection as the program's writer role; reconnects after it breaks."""

    def __init__(self, dsn: str, *, statement_timeout_ms: int = 5000) -> None:
        self._dsn = dsn
        self._timeout = statement_timeout_ms
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            # A bounded statement time keeps a stuck write from holding up halts for long.
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, self._timeout // 1000),
                options=f"-c statement_timeout={self._timeout}",
            )
        return self._conn

    async def write(
        self, keystrokes: list[KeystrokeRow], mouse: list[MouseRow], *, still_wanted: Callable[[], bool]
    ) -> bool:
        """Insert the rows in one transaction; commit only if ``still_wanted()`` right before commit.

        Returns whether the rows were committed.
        """
        conn = await self._connection()
        async with conn.transaction() as tx:
            async with conn.cursor() as cur:
                if keystrokes:
                    await cur.executemany(INSERT_KEYSTROKE, keystrokes)
                if mouse:
                    await cur.executemany(INSERT_MOUSE, mouse)
            if not still_wanted():
                # Raising Rollback leaves the block cleanly with the transaction undone.
                raise psycopg.Rollback(tx)
            return True
        return False

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class Collector:
    """The program's collecting agents, capturing on a fixed tick."""

    def __init__(
        self,
        program: Program,
        sink: TelemetrySink | None,
        *,
        tick_seconds: float = 0.5,
        max_rows_per_tick: int = 200,
        seed: int = 0,
        faults: FaultInjector | None = None,
    ) -> None:
        self.program = program
        self.faults = faults
        self.sink = sink
        self.tick_seconds = tick_seconds
        # One keystroke and one mouse event per sampled agent.
        self.agents_per_tick = max(1, max_rows_per_tick // 2)
        self._rng = random.Random(seed)
        self._log = log.bind(program=program.name)

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.tick_seconds)

    async def tick(self) -> None:
        program = self.program
        sample = program.sample_collecting(self._rng, self.agents_per_tick)
        if sample:
            ids = frozenset(a.id for a in sample)
            flight = InFlightWrite(ids)
            program.in_flight = flight
            try:
                await self._capture(sample, ids)
            finally:
                program.in_flight = None
                flight.done.set()
        program.counters.ticks += 1

    async def _capture(self, sample: list[AgentRecord], ids: frozenset[str]) -> None:
        program = self.program
        captured_at = datetime.now(UTC)
        if self.sink is not None:
            keystrokes, mouse = self._rows(sample, captured_at)
            try:
                committed = await self.sink.write(
                    keystrokes, mouse, still_wanted=lambda: program.all_collecting(ids)
                )
            except psycopg.Error as exc:
                # Expected during a pause once the writer's access is revoked: keep ticking.
                program.counters.failed_writes += 1
                self._log.warning("telemetry.write_failed", error=str(exc).strip(), sqlstate=exc.sqlstate)
                if self.sink is not None and isinstance(exc, psycopg.OperationalError):
                    await self.sink.close()
                return
            if not committed:
                program.counters.ticks_discarded += 1
                return
            program.counters.ticks_written += 1
            program.counters.rows_written += len(keystrokes) + len(mouse)
        for a in sample:
            a.last_event_at = captured_at

    def _captures(self, a: AgentRecord) -> frozenset[str]:
        """What the agent really captures: its profile, or everything if it misbehaves (injected fault)."""
        if self.faults is not None and a.id in self.faults.settings.profile_ignored_by:
            return DATA_TYPES
        return self.program.collection.running(a.id)

    def _rows(self, sample: list[AgentRecord], at: datetime) -> tuple[list[KeystrokeRow], list[MouseRow]]:
        # Every value is drawn whether captured or not, so the sample sequence does not depend on profiles;
        # a type not captured is written as NULL, and a table none of whose types is captured gets no row.
        r = self._rng
        keystrokes: list[KeystrokeRow] = []
        mouse: list[MouseRow] = []
        for a in sample:
            types = self._captures(a)
            key, text, window = r.randint(8, 222), " ".join(r.choices(_WORDS, k=3)), r.choice(_WINDOWS)
            x, y, button = r.randint(0, 2559), r.randint(0, 1439), r.choice(_BUTTONS)
            if types & KEYSTROKE_TYPES:
                keystrokes.append((a.id, a.employee, at, key if "key_codes" in types else None,
                                   text if "typed_content" in types else None,
                                   window if "window_titles" in types else None))
            if types & MOUSE_TYPES:
                positions = "mouse_positions" in types
                mouse.append((a.id, a.employee, at, x if positions else None, y if positions else None,
                              button if "mouse_buttons" in types else None))
        return keystrokes, mouse
