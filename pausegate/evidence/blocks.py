"""Records as blocks of canonical JSON lines: what a producer hands to sealing, cut where chunks end.

Per-record work (serialising, reading the time) belongs to whoever produces the records; sealing
only cuts blocks at line ends, parsing no more than the lines at a cut.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pausegate.evidence.files import canonical_lines

TIME_FIELD = "at"
BLOCK_BYTES = 256 * 1024


def time_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """Whole records as canonical JSON lines (each ending in a newline), handed to the sealer
    in one piece: per-record work belongs to whoever produces the records, not to sealing.

    ``first_at`` / ``last_at`` are the times of the first and last record that has one."""

    data: bytes
    records: int
    first_at: str | None = None
    last_at: str | None = None


def line_time(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return time_text(record.get(TIME_FIELD)) if isinstance(record, dict) else None


def _first_time(data: bytes, start: int, stop: int) -> str | None:
    """Time of the first timed line in ``data[start:stop]`` (whole lines)."""
    while start < stop:
        end = data.index(b"\n", start) + 1
        at = line_time(data[start:end])
        if at is not None:
            return at
        start = end
    return None


def _last_time(data: bytes, start: int, stop: int) -> str | None:
    """Time of the last timed line in ``data[start:stop]`` (whole lines)."""
    while stop > start:
        begin = data.rfind(b"\n", start, stop - 1) + 1
        at = line_time(data[max(begin, start) : stop])
        if at is not None:
            return at
        stop = max(begin, start)
    return None


def split_block(block: RecordBlock, cut: int, records: int | None = None) -> tuple[RecordBlock, RecordBlock | None]:
    """``block`` cut after the line ending at or after byte ``cut`` (or after ``records``
    lines); the tail is None when nothing is left. Only the pieces' edges are parsed."""
    data = block.data
    if records is None:
        pos = data.find(b"\n", max(cut, 1) - 1) + 1 or len(data)
    else:
        pos = 0
        for _ in range(records):
            pos = data.index(b"\n", pos) + 1
    if pos >= len(data):
        return block, None
    head_records = data.count(b"\n", 0, pos) if records is None else records
    head_last = _last_time(data, 0, pos)
    tail_first = _first_time(data, pos, len(data))
    head = RecordBlock(data[:pos], head_records, block.first_at if head_last else None, head_last)
    tail = RecordBlock(data[pos:], block.records - head_records, tail_first, block.last_at if tail_first else None)
    return head, tail


async def record_blocks(
    records: AsyncIterator[Mapping[str, Any]], *, block_bytes: int = BLOCK_BYTES, block_records: int | None = None
) -> AsyncIterator[RecordBlock]:
    """Records serialised as canonical JSON lines and gathered into blocks.

    Records are gathered first and serialised a block at a time (``canonical_lines``): the loop
    over the records does nothing but collect them, and only the first and last record's times
    are read. How many records a block takes follows the size of the lines so far, so blocks stay
    near ``block_bytes`` (the chunker cuts chunks where they belong whatever the blocks)."""
    record_limit = block_records or 1 << 62
    take = min(64, record_limit)  # records per block until the first block gives their size
    batch: list[Mapping[str, Any]] = []
    append = batch.append
    async for record in records:
        append(record)
        if len(batch) >= take:
            block = _block(batch)
            yield block
            batch = []
            append = batch.append
            take = min(record_limit, max(1, block_bytes * block.records // max(1, len(block.data))))
    if batch:
        yield _block(batch)


def _block(batch: list[Mapping[str, Any]]) -> RecordBlock:
    return RecordBlock(canonical_lines(batch), len(batch), _time(batch), _time(reversed(batch)))


def _time(records: Iterable[Mapping[str, Any]]) -> str | None:
    """The time of the first record in ``records`` that has one."""
    for record in records:
        at = record.get(TIME_FIELD)
        if at is not None:
            return at if type(at) is str else time_text(at)
    return None
