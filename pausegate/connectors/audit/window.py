"""Times and windows shared by the audit sources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime:
    """An aware datetime from an ISO-8601 string or datetime; naive times are taken as UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a time: {value!r}")
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """(start, end) as aware datetimes; ``ValueError`` if the window ends before it starts."""
    start, end = parse_time(start), parse_time(end)
    if end < start:
        raise ValueError(f"window ends ({end}) before it starts ({start})")
    return start, end
