"""Opening, closing and sealing a break-glass grant (``workflows.break_glass``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from temporalio import activity

from activities.heartbeat import running
from pausegate.analysis.exposure import Exposure, build_who_saw_what
from pausegate.analysis.who_saw_what import read_scope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.interfaces import AuditSource
from pausegate.connectors.postgres.admin import admin_connection
from pausegate.connectors.postgres.break_glass import GrantRefused, close_grant, open_grant
from pausegate.errors import ConfigError, PausegateError, TargetUnavailableError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.evidence.layout import break_glass_key, break_glass_reads_key
from pausegate.models.break_glass import GrantOpened, GrantRevoked, GrantSealed, GrantTarget, SealGrantInput
from pausegate.models.copies import CopiesDocument
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import AuditSourceSpec

LOCK_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_S = 10


def of_role(record: Mapping[str, Any], role: str) -> bool:
    """Whether a sealed log record is a line of the grant's role: the server's own ``user`` field (a
    capped line is judged by its head, which holds the leading fields)."""
    if isinstance(line := record.get("line"), str):
        try:
            entry = json.loads(line)
        except ValueError:
            return False
        return isinstance(entry, dict) and entry.get("user") == role
    head = record.get("head")
    return isinstance(head, str) and f'"user":"{role}"' in head


class BreakGlassActivities:
    """Activities over one grant: the database side through the connection's DSN, the statements
    through the connection's postgres_log audit source (the same reader and sealing as the audit),
    its reads as who saw what derives them (the same analysis, over the grant's sealed lines)."""

    def __init__(self, dsn_of: Callable[[str], str], store: EvidenceStore,
                 sources: Callable[[AuditSourceSpec, str, list[str]], AuditSource],
                 access: Callable[[str], object] | None = None) -> None:
        self._dsn_of = dsn_of
        self._store = store
        self._sources = sources
        self._exposure = Exposure(store, access)

    async def _quarantined(self, target: GrantTarget) -> list[str]:
        """Where the grant's copies lie in the quarantine schema, from the copies document the pause recorded
        (history holds their ids only); a copy not quarantined in the dataset's database is refused."""
        if not target.copies:
            return []
        if target.copies_document is None:
            raise GrantRefused("break-glass refused: the pause recorded no copies document")
        document = CopiesDocument.model_validate(await read_recorded(self._store, target.copies_document))
        found = {c.current.id: c for c in document.copies}
        places = []
        for copy_id in target.copies:
            entry = found.get(copy_id)
            if entry is None or entry.current.state != "quarantined" or entry.current.quarantined_as is None \
                    or entry.connection not in (None, target.connection):
                raise GrantRefused(f"break-glass refused: copy {copy_id} is not quarantined in the dataset's database")
            places.append(entry.current.quarantined_as)
        return places

    async def _quarantined_to_close(self, target: GrantTarget) -> tuple[list[str], str | None]:
        """The copies' places for the close, or why they cannot be known now (the rest of the close goes on)."""
        try:
            return await self._quarantined(target), None
        except PausegateError as exc:
            return [], str(exc)

    @activity.defn(name="open_break_glass")
    async def open_break_glass(self, target: GrantTarget) -> GrantOpened:
        """Create the grant's role with SELECT on what was asked, its statements logged."""
        async with running():
            quarantined = await self._quarantined(target)
            async with admin_connection(self._dsn_of(target.connection), f"break-glass {target.grant_id}",
                                        lock_timeout_ms=LOCK_TIMEOUT_MS, connect_timeout_s=CONNECT_TIMEOUT_S) as conn:
                return await open_grant(conn, target, quarantined)

    @activity.defn(name="close_break_glass")
    async def close_break_glass(self, target: GrantTarget) -> GrantRevoked:
        """Login off, privileges revoked, sessions ended; retried until the database confirms it."""
        async with running():
            quarantined, unknown = await self._quarantined_to_close(target)
            async with admin_connection(self._dsn_of(target.connection), f"break-glass {target.grant_id}",
                                        lock_timeout_ms=LOCK_TIMEOUT_MS, connect_timeout_s=CONNECT_TIMEOUT_S) as conn:
                revoked = await close_grant(conn, target, quarantined)
            # login is off and its sessions ended either way; what is left is retried until the database confirms
            problems = revoked.problems + ([f"its copies' places are not known yet: {unknown}"] if unknown else [])
            if problems:
                raise TargetUnavailableError(f"break-glass {target.grant_id} not closed yet: " + "; ".join(problems))
            return revoked

    @activity.defn(name="seal_break_glass")
    async def seal_break_glass(self, input: SealGrantInput) -> GrantSealed:
        """Seal, byte for byte from the server's log, every line of the grant's role in its window."""
        async with running():
            target = input.target
            if target.audit_source is None:
                raise ConfigError(f"break-glass {target.grant_id}: no postgres_log audit source")
            source = self._sources(target.audit_source, target.program, [])
            if not isinstance(source, PostgresLogSource):
                raise ConfigError(f"audit source {target.audit_source.name!r} is not a PostgreSQL log")
            db = self._exposure.database(target.connection)
            # every statement of the window (no dataset filter), fenced so its last lines are on disk
            source = source.scoped(None)
            if db is not None:
                source = source.fenced(db.log_fence)
            count = 0

            async def lines() -> AsyncIterator[Mapping[str, Any]]:
                nonlocal count
                async for record in source.records(input.window_start, input.window_end,
                                                   progress=lambda n: activity.heartbeat(f"{n} log bytes read")):
                    if of_role(record, target.role):
                        count += 1
                        yield record

            ref, _chunks = await self._store.seal(break_glass_key(target.pause_key, target.grant_id), lines())
            reads, report = await self._reads(target, ref)
            # a retry finds the bundle sealed already: its manifest's count, not this pass's, is the count
            return GrantSealed(statements=max(ref.records, count), evidence=ref,
                               reads=reads, reads_report=report)

    async def _reads(self, target: GrantTarget, sealed: EvidenceRef) -> tuple[int, EvidenceRef | None]:
        """Who saw what over the grant's sealed lines, stored as the holder's break-glass reads."""
        if target.dataset is None:
            return 0, None
        scope, who = read_scope([await self._exposure.paths(target.pause_key, target.dataset)])
        report = await build_who_saw_what(scope, who, [self._store.iter_bundle(sealed.key, sealed.sha256)],
                                          lambda n: activity.heartbeat(n))
        document = {"kind": "break-glass", "grant": target.grant_id, "role": target.role,
                    "bundle": sealed.model_dump(mode="json"), "who_saw_what": report.model_dump(mode="json")}
        ref = await asyncio.to_thread(self._store.put_json, break_glass_reads_key(target.pause_key, target.grant_id),
                                      document)
        return sum(e.reads for e in report.entries), ref
