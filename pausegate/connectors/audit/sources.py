"""Audit sources: who touched the data, over a window, streamed with bounded memory.

* ``JsonlSource``: JSONL files (one object per line with an ISO-8601 time field).
* ``FleetAuditSource``: the fleet's audit trail through a ``FleetConnector``.
* ``PostgresLogSource``: PostgreSQL's own server log in ``jsonlog`` format with statement
  logging on, reduced to one record per statement that read one of the dataset's tables.

Every source yields only records with ``start <= at < end``.

Statement logging for the embedded PostgreSQL (``configure_statement_logging`` applies it)::

    ALTER SYSTEM SET logging_collector = on;          -- needs a server restart
    ALTER SYSTEM SET log_destination = 'jsonlog';     -- PostgreSQL 15+
    ALTER SYSTEM SET log_directory = '<log_dir>';     -- absolute, or relative to PGDATA
    ALTER SYSTEM SET log_statement = 'all';
    ALTER SYSTEM SET log_timezone = 'UTC';
    ALTER SYSTEM SET log_file_mode = '0600';
    SELECT pg_reload_conf();

``log_statement = 'all'`` logs statement text before execution, including statements that
then fail; the failure (e.g. permission denied) is a following ERROR entry of the same
session, which this module pairs with its statement (``outcome``).
"""

from __future__ import annotations

import asyncio
import glob
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql
from pydantic import Field

from pausegate.connectors.interfaces import FleetConnector
from pausegate.errors import EvidenceError
from pausegate.models.base import Model

log = structlog.get_logger(__name__)

_YIELD_EVERY = 2000  # lines between cooperative yields, so a large file does not starve the event loop


def parse_time(value: Any) -> datetime:
    """An aware datetime from an ISO-8601 string or datetime; naive times are taken as UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a time: {value!r}")
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = parse_time(start), parse_time(end)
    if end < start:
        raise ValueError(f"window ends ({end}) before it starts ({start})")
    return start, end


def _expand(path_or_glob: str | Path) -> list[Path]:
    text = str(path_or_glob)
    if glob.has_magic(text):
        return sorted(Path(p) for p in glob.glob(text))
    path = Path(text)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return [path]


# ---------------------------------------------------------------- JSONL


class JsonlSource:
    """Records from JSONL files, in file-name then line order.

    Args:
        path_or_glob: a file, a directory (every file in it) or a glob pattern.
        time_field: the field holding each record's time.
        strict: a line that is not a JSON object with a readable time raises ``EvidenceError``
            (naming file and line) instead of being skipped with a warning; evidence that
            silently drops records is worse than a failed snapshot.
    """

    def __init__(self, path_or_glob: str | Path, *, time_field: str = "at", strict: bool = True) -> None:
        self.path_or_glob = path_or_glob
        self.time_field = time_field
        self.strict = strict

    def _lines(self, start: datetime, end: datetime) -> Iterator[dict[str, Any] | None]:
        for path in _expand(self.path_or_glob):
            with path.open("rb") as f:
                for lineno, raw in enumerate(f, 1):
                    if not raw.strip():
                        yield None
                        continue
                    try:
                        record = json.loads(raw)
                        if not isinstance(record, dict):
                            raise ValueError("not a JSON object")
                        at = parse_time(record[self.time_field])
                    except (ValueError, KeyError) as exc:
                        if self.strict:
                            raise EvidenceError(f"{path}:{lineno}: unreadable audit record ({exc})") from exc
                        log.warning("audit_record_skipped", file=str(path), line=lineno, error=str(exc))
                        yield None
                        continue
                    yield record if start <= at < end else None

    async def records(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]:
        start, end = _check_window(start, end)
        for n, record in enumerate(self._lines(start, end)):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if record is not None:
                yield record


# ---------------------------------------------------------------- fleet


class FleetAuditSource:
    """The fleet's audit trail for one program, as plain JSON-ready dicts."""

    def __init__(self, fleet: FleetConnector, program: str) -> None:
        self.fleet = fleet
        self.program = program

    async def records(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]:
        start, end = _check_window(start, end)
        async for record in self.fleet.audit_trail(self.program, start, end):
            # the fleet is asked for the window, but the window is enforced here too
            if start <= parse_time(record.at) < end:
                yield record.model_dump(mode="json")


# ---------------------------------------------------------------- PostgreSQL jsonlog

_STATEMENT = re.compile(r"^(?:statement|execute [^:]*|execute fetch from [^:]*): (?P<sql>.*)$", re.DOTALL)
_KIND = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(?P<kind>[A-Za-z]+)", re.DOTALL)
_READ_KINDS = frozenset({"SELECT", "WITH", "TABLE", "COPY", "DECLARE", "FETCH", "EXPLAIN", "VALUES"})
_READ_CONTEXT = re.compile(r"\b(?:FROM|JOIN|USING)\s+(?:ONLY\s+)?$", re.IGNORECASE)
_TZ_OFFSET = re.compile(r"^[+-]\d{2}(?::?\d{2})?$")


def _parse_pg_time(text: str) -> datetime:
    """jsonlog's ``timestamp`` (``2026-11-29 06:30:00.123 UTC``), in ``log_timezone``."""
    stamp, _, zone = text.rpartition(" ")
    dt = datetime.fromisoformat(stamp)
    if zone in ("UTC", "GMT", "Z"):
        return dt.replace(tzinfo=UTC)
    if _TZ_OFFSET.match(zone):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        return dt.replace(tzinfo=timezone(sign * offset))
    raise ValueError(f"unsupported log time zone {zone!r}; set log_timezone = 'UTC'")


class _Table:
    def __init__(self, qualified: str) -> None:
        schema, _, name = qualified.rpartition(".")
        self.qualified = qualified if schema else f"public.{name}"
        schema = schema or "public"
        ident = r'(?:"{0}"|\b{0}\b)'
        # schema-qualified always counts; a bare name counts too (search_path may resolve it)
        self.pattern = re.compile(
            rf"(?:{ident.format(re.escape(schema))}\s*\.\s*)?{ident.format(re.escape(name))}", re.IGNORECASE
        )


def _objects(statement: str, tables: list[_Table]) -> tuple[list[str], list[str]]:
    """(tables mentioned, tables mentioned in a reading position: after FROM/JOIN/USING)."""
    mentioned: list[str] = []
    read: list[str] = []
    for table in tables:
        hits = list(table.pattern.finditer(statement))
        if hits:
            mentioned.append(table.qualified)
            if any(_READ_CONTEXT.search(statement[: m.start()]) for m in hits):
                read.append(table.qualified)
    return mentioned, read


def statement_kind(statement: str) -> str:
    m = _KIND.match(statement)
    return m.group("kind").upper() if m else "UNKNOWN"


def _reads(kind: str, statement: str, mentioned: list[str], read_positions: list[str]) -> list[str]:
    """Which of the mentioned tables the statement reads: everything for query kinds
    (``COPY ... FROM`` loads data and is a write), only FROM/JOIN/USING positions for
    INSERT/UPDATE/DELETE/CREATE ... AS and the like."""
    if kind == "COPY":
        return mentioned if re.search(r"\bTO\b", statement, re.IGNORECASE) else []
    if kind in _READ_KINDS:
        return mentioned
    return read_positions


class PostgresLogSource:
    """Statements that read the dataset's tables, from PostgreSQL ``jsonlog`` files.

    Each record: ``at`` (ISO-8601, UTC), ``user`` (login role), ``database``, ``kind``
    (first SQL keyword), ``objects`` (dataset tables read), ``outcome`` (``ok`` or ``error``),
    ``sqlstate`` (of the error, if any), ``session_id``, ``pid``, ``application_name``, and
    ``statement`` (its text; it stays inside the evidence store).

    Table matching is textual (schema-qualified or bare names, quoted or not): it errs
    towards including a statement that merely mentions a table, never towards missing a read.

    Args:
        log_dir: the server's ``log_directory`` (every ``*.json`` file in it is read, in name order).
        tables: the dataset's tables, ``schema.table`` (bare names mean ``public``).
    """

    def __init__(self, log_dir: Path | str, tables: list[str], *, database: str | None = None) -> None:
        if not tables:
            raise ValueError("PostgresLogSource needs at least one table")
        self.log_dir = Path(log_dir)
        self.tables = [_Table(t) for t in tables]
        # One server logs every database; same-named tables elsewhere are not this dataset.
        self.database = database

    def _files(self, start: datetime) -> list[Path]:
        files = sorted(self.log_dir.glob("*.json"))
        # a file last written before the window cannot hold entries inside it
        return [
            f for f in files if datetime.fromtimestamp(f.stat().st_mtime, UTC) >= start - timedelta(seconds=5)
        ]

    def _entries(self, path: Path, start: datetime) -> Iterator[dict[str, Any]]:
        # The server logs every statement of every database: most lines are skipped by a byte
        # search, before any JSON is parsed. Sessions belong to one database, so skipping other
        # databases' lines never separates a statement from the error that follows it.
        database = json.dumps(self.database).encode() if self.database is not None else None
        earliest = start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S").encode()
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if database is not None and b'"dbname":' + database not in raw:
                    continue
                # jsonlog lines start with {"timestamp":"YYYY-MM-DD HH:MM:SS.mmm UTC"; other zones are parsed.
                if raw.startswith(b'{"timestamp":"') and raw[37:42] == b' UTC"' and raw[14:33] < earliest:
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    # the collector may be mid-write on the newest file's last line
                    log.warning("pg_log_line_unreadable", file=str(path), line=lineno)
                    continue
                if isinstance(entry, dict):
                    yield entry

    def _statement_record(self, entry: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.database is not None and entry.get("dbname") != self.database:
            return None
        m = _STATEMENT.match(str(entry.get("message", "")))
        if m is None:
            return None
        statement = m.group("sql")
        mentioned, read_positions = _objects(statement, self.tables)
        if not mentioned:
            return None
        kind = statement_kind(statement)
        objects = _reads(kind, statement, mentioned, read_positions)
        if not objects:
            return None
        return {
            "at": _parse_pg_time(str(entry["timestamp"])).isoformat(),
            "user": entry.get("user"),
            "database": entry.get("dbname"),
            "kind": kind,
            "objects": objects,
            "outcome": "ok",
            "sqlstate": None,
            "session_id": entry.get("session_id"),
            "pid": entry.get("pid"),
            "application_name": entry.get("application_name"),
            "statement": statement,
        }

    def _scan(self, start: datetime, end: datetime) -> Iterator[dict[str, Any] | None]:
        # A statement's failure is logged as the session's next entry; hold each session's
        # last statement until that entry (or the end of the files) decides its outcome.
        # Memory is bounded by the number of sessions, not by the log's size.
        pending: dict[str, dict[str, Any]] = {}
        for path in self._files(start):
            for entry in self._entries(path, start):
                session = str(entry.get("session_id", ""))
                held = pending.pop(session, None)
                if held is not None:
                    if entry.get("error_severity") in ("ERROR", "FATAL", "PANIC"):
                        held["outcome"] = "error"
                        held["sqlstate"] = entry.get("state_code")
                    yield held
                try:
                    record = self._statement_record(entry)
                except (KeyError, ValueError) as exc:
                    log.warning("pg_log_entry_unreadable", file=str(path), error=str(exc))
                    record = None
                if record is not None and start <= parse_time(record["at"]) < end:
                    pending[session] = record
                else:
                    yield None
        yield from pending.values()

    async def records(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]:
        start, end = _check_window(start, end)
        for n, record in enumerate(self._scan(start, end)):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if record is not None:
                yield record


_LOGGING_SETTINGS: tuple[tuple[str, str], ...] = (
    ("logging_collector", "on"),
    ("log_destination", "jsonlog"),
    ("log_statement", "all"),
    ("log_timezone", "UTC"),
    ("log_file_mode", "0600"),
    ("log_filename", "postgresql-%Y-%m-%d_%H%M%S.log"),
)


def configure_statement_logging(dsn: str, log_dir: Path | str) -> bool:
    """Make the server log every statement as jsonlog into ``log_dir`` (ALTER SYSTEM +
    reload; needs a superuser). Returns True when a restart is still needed for it to take
    effect (``logging_collector`` only changes at server start)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, value in (*_LOGGING_SETTINGS, ("log_directory", str(log_dir))):
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")
        # the reload is asynchronous; pending_restart is exact once it has been processed
        row = conn.execute(
            "SELECT current_setting('logging_collector') = 'on' "
            "AND EXISTS (SELECT 1 FROM pg_settings WHERE name = 'log_destination' AND setting = 'jsonlog')"
        ).fetchone()
    active = bool(row and row[0])
    log.info("pg_statement_logging_configured", log_dir=str(log_dir), restart_needed=not active)
    return not active


# ---------------------------------------------------------------- who saw what


class ObjectReads(Model):
    """How one login role read one object over the window."""

    user: str
    object: str
    reads: int = Field(ge=0, description="Statements that read it and succeeded.")
    failed: int = Field(ge=0, description="Statements that tried and failed (e.g. permission denied).")
    first_at: datetime | None = None
    last_at: datetime | None = None


class WhoSawWhat(Model):
    """Which login roles read which objects: the exposure as the database saw it."""

    entries: list[ObjectReads]
    users: list[str] = Field(description="Roles with at least one successful read.")
    statements: int = Field(ge=0)

    def for_user(self, user: str) -> list[ObjectReads]:
        return [e for e in self.entries if e.user == user]


class WhoSawWhatBuilder:
    """Accumulates ``PostgresLogSource`` records; memory grows with (user, object) pairs, not records."""

    def __init__(self) -> None:
        self._acc: dict[tuple[str, str], list[Any]] = {}
        self.statements = 0

    def add(self, record: Mapping[str, Any]) -> None:
        self.statements += 1
        ok = record.get("outcome", "ok") == "ok"
        at = parse_time(record["at"])
        for obj in record.get("objects", ()):
            slot = self._acc.setdefault((str(record.get("user")), str(obj)), [0, 0, None, None])
            if ok:
                slot[0] += 1
                slot[2] = at if slot[2] is None or at < slot[2] else slot[2]
                slot[3] = at if slot[3] is None or at > slot[3] else slot[3]
            else:
                slot[1] += 1

    def build(self) -> WhoSawWhat:
        entries = [
            ObjectReads(user=u, object=o, reads=v[0], failed=v[1], first_at=v[2], last_at=v[3])
            for (u, o), v in sorted(self._acc.items())
        ]
        return WhoSawWhat(
            entries=entries, users=sorted({e.user for e in entries if e.reads}), statements=self.statements
        )


def who_saw_what(records: Iterable[Mapping[str, Any]]) -> WhoSawWhat:
    """Summarise ``PostgresLogSource`` records per (user, object); first/last are of successful reads."""
    builder = WhoSawWhatBuilder()
    for record in records:
        builder.add(record)
    return builder.build()
