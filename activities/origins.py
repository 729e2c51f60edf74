"""When and how the data became readable: the origin of each access path, from the statement log.

``derive_origins`` reads each database log of the window again, keeping the lines that name a path of
the recorded exposure scope (its objects, its roles) or change a session (search_path, role,
transactions); seals them beside the audit bundles, byte for byte; derives each path's intervals from
the sealed lines (``pausegate.analysis.origins``) and seals the origin document. The workflow's history
gets counts, times and references only (``OriginSummary``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from temporalio import activity

from activities.evidence import AuditSourceFactory, seal_log
from activities.heartbeat import running
from pausegate.analysis.exposure import READ_BATCH, Exposure
from pausegate.analysis.origins import OriginFinder
from pausegate.analysis.origins_paths import Paths, scope_paths
from pausegate.analysis.pglog_lines import decode_entry, parse_pg_time
from pausegate.analysis.statement_reads import ReadScope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.errors import TargetUnavailableError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.evidence.layout import origins_key, origins_log_key
from pausegate.models.evidence import EvidenceRef
from pausegate.models.origins import DeriveOriginsInput, OriginDocument, OriginSummary, summarise

# Lines that change a session without naming a path: who runs its next statements. Transaction control
# is not searched for (BEGIN and COMMIT are a tenth of a busy log): a statement's effect then counts once it
# succeeds, so a grant rolled back later counts as opened (the exposure is never shortened by it).
SESSION_WORDS = ("role",)
FIRST_LINE_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 10
SAME_NAMED_Q = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = ANY(%(names)s) AND n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'
"""


def needle_scope(paths: Paths) -> ReadScope:
    """A scope whose needles are what a statement changing a path holds (``Paths.needles``) and the session
    words: what the log is searched for (``PostgresLogSource`` keeps a line holding any of them, and every
    line setting search_path)."""
    words = paths.needles() | set(SESSION_WORDS)
    return ReadScope.of(tables={f"origins.{w}" for w in words})


def first_line_at(log_dir: Path) -> datetime | None:
    """The time of the oldest line the server's log still holds (the first line of its oldest file)."""
    for path in sorted(log_dir.glob("*.json")):
        try:
            with path.open("rb") as f:
                head = f.read(FIRST_LINE_BYTES)
        except OSError:
            continue
        entry = decode_entry(head.partition(b"\n")[0])
        if entry is not None and "timestamp" in entry:
            try:
                return parse_pg_time(str(entry["timestamp"]))
            except ValueError:
                continue
    return None


async def same_named(conn: psycopg.AsyncConnection[Any], paths: Paths) -> set[str]:
    """Relations the catalog holds outside the scope under one of the scope's relation names: an unqualified
    name in a statement may have reached one of them instead (``Paths.shadows``)."""
    names = sorted({r.rpartition(".")[2] for r, kind in paths.relations.items() if kind != "function"})
    rows = await (await conn.execute(SAME_NAMED_Q, {"names": names})).fetchall()
    return {str(r[0]) for r in rows} - set(paths.relations)


class OriginActivities:
    """Activities deriving the exposure's origins (the evidence store, the audit sources, the databases)."""

    def __init__(self, store: EvidenceStore, sources: AuditSourceFactory,
                 access: Callable[[str], object] | None = None, dsn_of: Callable[[str], str] | None = None) -> None:
        """``dsn_of``: the deployment's DSN for a connection name; the catalog then says which relations
        outside the scope share a name with the scope's (without it, only those the log shows made)."""
        self._store = store
        self._dsn_of = dsn_of
        self._sources = sources
        self._exposure = Exposure(store, access)

    @activity.defn(name="derive_origins")
    async def derive_origins(self, input: DeriveOriginsInput) -> OriginSummary:
        """Each path's openings and closings, who ran each and when; sealed once per pause (a retry
        returns the sealed document's summary)."""
        key = origins_key(input.pause_key)
        async with running() as progress:
            if (ref := await asyncio.to_thread(self._store.get, key)) is not None:
                return summarise(OriginDocument.model_validate(await read_recorded(self._store, ref)), ref)
            scopes = [s for s in [await asyncio.to_thread(self._exposure.recorded_scope, input.pause_key, d.name)
                                  for d in input.datasets] if s is not None]
            paths = scope_paths(scopes, input.intended_roles)
            for connection in sorted({d.connection for d in input.datasets}) if self._dsn_of is not None else ():
                paths.shadows |= await self._same_named(connection, paths)
            recorded = [s.recorded_at for s in scopes if s.recorded_at is not None]
            finder = OriginFinder(paths, recorded_at=min(recorded) if recorded else None)
            bundles, oldest = await self._read(input, paths, finder)
            progress.report("log read", len(bundles))
            start = input.window_start
            document = finder.finish(window_start=start, window_end=input.window_end,
                                     oldest_line=max(oldest, start) if oldest is not None else start)
            document = document.model_copy(update={"log_bundles": bundles})
            ref = await asyncio.to_thread(self._store.put_json, key, document.model_dump(mode="json"))
            return summarise(document, ref)

    async def _same_named(self, connection: str, paths: Paths) -> set[str]:
        assert self._dsn_of is not None
        try:
            async with await psycopg.AsyncConnection.connect(self._dsn_of(connection), autocommit=True,
                                                             connect_timeout=CONNECT_TIMEOUT_S) as conn:
                return await same_named(conn, paths)
        except psycopg.OperationalError as exc:
            raise TargetUnavailableError(f"connection {connection}: {exc}") from None

    async def _read(self, input: DeriveOriginsInput, paths: Paths,
                    finder: OriginFinder) -> tuple[list[EvidenceRef], datetime | None]:
        """Seal and read each database log's lines of the window that name a path; without a log to read
        again, the exposure's own sealed bundles. Returns the bundles sealed and the oldest line held."""
        tables = [f"{d.schema_name}.{t}" for d in input.datasets for t in d.tables]
        scope = needle_scope(paths)
        sealed: list[EvidenceRef] = []
        oldest: datetime | None = None
        for spec in input.log_sources:
            source = self._sources(spec, input.program, tables)
            if not isinstance(source, PostgresLogSource):
                continue
            db = self._exposure.database(spec.connection)
            source = source.scoped(scope)
            source = source.fenced(db.log_fence) if db is not None else source
            ref, _ = await seal_log(self._store, origins_log_key(input.pause_key, spec.name), source,
                                    input.window_start, input.window_end)
            sealed.append(ref)
            at = await asyncio.to_thread(first_line_at, source.log_dir)
            oldest = at if oldest is None or (at is not None and at < oldest) else oldest
        keys = [r.key for r in sealed] or list(input.bundles)
        for key in keys:
            records = iter(self._store.iter_bundle(key))
            while batch := await asyncio.to_thread(lambda: list(itertools.islice(records, READ_BATCH))):  # noqa: B023
                finder.add(batch, key)
            activity.heartbeat(f"{key.rpartition('/')[2]} read")
        return sealed, oldest
