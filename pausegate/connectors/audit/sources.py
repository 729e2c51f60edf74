"""Audit sources: who touched the data, over a window, streamed with bounded memory.

* ``JsonlSource``: JSONL files (one object per line with an ISO-8601 time field).
* ``FleetAuditSource``: the fleet's audit trail through a ``FleetConnector``.
* ``PostgresLogSource`` (``pglog``): the lines of PostgreSQL's own ``jsonlog`` that may show a
  read of the dataset, sealed byte for byte; ``who_saw_what`` derives who read what from them.

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
then fail; the failure (e.g. permission denied) is the session's next entry, an ERROR.
"""

from __future__ import annotations

import asyncio
import glob
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql

from pausegate.analysis.statement_reads import statement_kind
from pausegate.analysis.who_saw_what import ObjectReads, WhoSawWhat, WhoSawWhatBuilder
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.audit.window import check_window, parse_time
from pausegate.connectors.interfaces import FleetConnector
from pausegate.errors import EvidenceError

__all__ = [
    "FleetAuditSource",
    "JsonlSource",
    "ObjectReads",
    "PostgresLogSource",
    "WhoSawWhat",
    "WhoSawWhatBuilder",
    "configure_statement_logging",
    "parse_time",
    "statement_kind",
]

log = structlog.get_logger(__name__)

_YIELD_EVERY = 2000  # lines between cooperative yields, so a large file does not starve the event loop


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
        start, end = check_window(start, end)
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
        start, end = check_window(start, end)
        async for record in self.fleet.audit_trail(self.program, start, end):
            # the fleet is asked for the window, but the window is enforced here too
            if start <= parse_time(record.at) < end:
                yield record.model_dump(mode="json")


# ---------------------------------------------------------------- PostgreSQL jsonlog

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
