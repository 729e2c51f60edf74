"""PostgreSQL's jsonlog lines as sealed records: what the log connector (``connectors.audit.pglog``)
seals and the analyses read back. Pure functions of a line or a record: no I/O."""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

ERRORS = frozenset({"ERROR", "FATAL", "PANIC"})
"""Severities of a line that says the statement before it in its session failed."""
_STATEMENT_PREFIX = "statement: "
_EXECUTE_PREFIXES = ("execute fetch from ", "execute ")


def statement_text(message: str) -> str | None:
    """The SQL of a ``log_statement`` message: ``statement: SQL``, or ``execute NAME: SQL`` /
    ``execute fetch from NAME: SQL`` (extended protocol; a NAME holding ": " makes the SQL start
    inside it: it then does not parse and is reported unparsed, never dropped)."""
    if message.startswith(_STATEMENT_PREFIX):
        return message[len(_STATEMENT_PREFIX):]
    for prefix in _EXECUTE_PREFIXES:
        if message.startswith(prefix):
            i = message.find(": ", len(prefix))
            return message[i + 2:] if i >= 0 else None
    return None


def may_set_path(statement: str) -> bool:
    """Whether the statement may change the session's search_path (SET, set_config, or a name
    spelled with U& escapes that the parser decodes): cheap, and never False when it does."""
    folded = statement.casefold()
    return "search_path" in folded or "set_config" in folded or "u&" in folded


def parse_pg_time(text: str) -> datetime:
    """jsonlog's ``timestamp`` (``2026-11-29 06:30:00.123 UTC``), in ``log_timezone``."""
    stamp, _, zone = text.rpartition(" ")
    dt = datetime.fromisoformat(stamp)
    if zone in ("UTC", "GMT", "Z"):
        return dt.replace(tzinfo=UTC)
    digits = zone[1:].replace(":", "")
    if zone[:1] in ("+", "-") and digits.isdigit() and len(digits) in (2, 4):
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        return dt.replace(tzinfo=timezone(-offset if zone[0] == "-" else offset))
    raise ValueError(f"unsupported log time zone {zone!r}; set log_timezone = 'UTC'")


def sealed_record(at: datetime, file: str, offset: int, raw: bytes) -> dict[str, Any]:
    """The sealed form of one log line (``raw``: its bytes without the newline)."""
    record: dict[str, Any] = {"at": at.astimezone(UTC).isoformat(), "file": file, "offset": offset}
    try:
        record["line"] = raw.decode("utf-8")
    except UnicodeDecodeError:  # a server encoding other than UTF-8: the bytes, untouched
        record["line_b64"] = base64.b64encode(raw).decode("ascii")
    return record


def capped_record(at: datetime, file: str, offset: int, head: bytes, length: int, sha256: str) -> dict[str, Any]:
    """The sealed form of a line over the reader's cap: its first bytes (``head``, or ``head_b64`` when
    they are not UTF-8), its whole ``length`` in bytes and the ``sha256`` of all of it. Such a line is
    never decoded whole; it counts as a statement nobody could read."""
    record: dict[str, Any] = {"at": at.astimezone(UTC).isoformat(), "file": file, "offset": offset,
                              "length": length, "sha256": sha256}
    try:  # a character cut in two at the end of the head is left out, not a reason to encode it all
        record["head"] = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        record["head_b64"] = base64.b64encode(head).decode("ascii")
    return record


def is_capped(record: Mapping[str, Any]) -> bool:
    """Whether a sealed record is a capped line (``capped_record``), not a whole one."""
    return isinstance(record.get("sha256"), str) and isinstance(record.get("length"), int)


def leading_fields(head: bytes) -> dict[str, Any] | None:
    """The fields jsonlog writes before ``message`` (time, user, database, session, line number), read
    from the first bytes of a line too long to decode; None when they are not there. A raw ``"``
    never occurs inside a JSON string, so the first ``,"message":`` is where the message starts."""
    end = head.find(b',"message":')
    return decode_entry(head[:end] + b"}") if end > 0 else None


def capped_fields(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """``leading_fields`` of a capped record's head; None for any other record."""
    if not is_capped(record):
        return None
    if isinstance(record.get("head"), str):
        head = str(record["head"]).encode("utf-8")
    elif isinstance(record.get("head_b64"), str):
        head = base64.b64decode(str(record["head_b64"]), validate=True)
    else:
        return None
    return leading_fields(head)


def original_line(record: Mapping[str, Any]) -> bytes | None:
    """The log line's original bytes (without the newline) from a sealed record; None if it is not one."""
    if isinstance(record.get("line"), str):
        return str(record["line"]).encode("utf-8")
    if isinstance(record.get("line_b64"), str):
        return base64.b64decode(str(record["line_b64"]), validate=True)
    return None


def decode_entry(raw: bytes) -> dict[str, Any] | None:
    """A jsonlog line as a dict; None if it is not one (e.g. the collector is mid-write)."""
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # orjson wants UTF-8; the server may write another encoding
            entry = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            return None
    return entry if isinstance(entry, dict) else None
