"""The fleet's audit trail: an append-only, time-ordered log read by time window."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from pausegate.models.fleet import AuditRecord

# A reference fleet runs for days at most; past this many records the oldest are dropped
# rather than letting memory grow without bound.
MAX_RECORDS = 2_000_000


class Entry(NamedTuple):
    """Kept as a tuple: a bulk halt writes thousands of these, and models cost more per record."""

    at: datetime
    actor: str
    action: str
    agent_id: str | None
    detail: str


class AuditLog:
    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._entries: list[Entry] = []
        self._times: list[datetime] = []
        self._max = max_records

    def __len__(self) -> int:
        return len(self._entries)

    def append(
        self, actor: str, action: str, agent_id: str | None, detail: str, *, at: datetime | None = None
    ) -> None:
        now = at or datetime.now(UTC)
        # The wall clock can step back; the trail stays ordered so windows can be bisected.
        if self._times and now < self._times[-1]:
            now = self._times[-1]
        self._entries.append(Entry(now, actor, action, agent_id, detail))
        self._times.append(now)
        if len(self._entries) > self._max:
            drop = len(self._entries) - self._max
            del self._entries[:drop]
            del self._times[:drop]

    def window(self, start: datetime, end: datetime) -> list[Entry]:
        """Entries with ``start <= at < end`` (a snapshot: later appends do not show up in it)."""
        lo = bisect.bisect_left(self._times, start)
        hi = bisect.bisect_left(self._times, end)
        return self._entries[lo:hi]


def to_record(entry: Entry) -> AuditRecord:
    return AuditRecord(
        at=entry.at, actor=entry.actor, action=entry.action, agent_id=entry.agent_id, detail=entry.detail
    )


def ndjson_chunks(entries: list[Entry], chunk: int = 1000) -> Iterator[bytes]:
    """The entries as NDJSON, a chunk of lines at a time so large windows stream."""
    for i in range(0, len(entries), chunk):
        yield b"".join(to_record(e).model_dump_json().encode() + b"\n" for e in entries[i : i + chunk])
