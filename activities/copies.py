"""Finding and containing copies of the dataset: from the sealed statement log
(``pausegate.analysis.copies``), in each dataset's catalog and on the servers the deployment names.

The pause-level activities (``find_pause_copies``, ``contain_pause_copies``) keep names out of the
workflow's history: each seals a copies document into the evidence store and returns its reference
and counts (``CopiesSummary``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from temporalio import activity

from activities.evidence import AuditSourceFactory, seal_log
from activities.heartbeat import running
from pausegate.analysis.copies import CopyFinder
from pausegate.analysis.exposure import READ_BATCH, Exposure, build_who_saw_what
from pausegate.analysis.statement_reads import Exposer, ReadScope
from pausegate.analysis.who_saw_what import Attribution, read_scope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.postgres.copies_catalog import (
    DatasetLocation,
    find_by_fingerprint,
    find_foreign_tables,
    find_publications,
    find_subscribed_tables,
    resolve,
    subjects_in,
)
from pausegate.connectors.postgres.copies_settle import drop_copy, keep_copy, purge_copy
from pausegate.connectors.postgres.quarantine import contain_all
from pausegate.errors import ConfigError, TargetUnavailableError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.evidence.layout import (
    copies_contained_key,
    copies_exposure_key,
    copies_found_key,
    copies_log_key,
    copies_subjects_key,
    data_subjects_key,
)
from pausegate.models.copies import (
    ContainCopiesInput,
    ContainedCopy,
    ContainPauseCopiesInput,
    CopiesDocument,
    CopiesFound,
    CopiesSummary,
    Copy,
    CopyContainment,
    CopyKind,
    FindCatalogCopiesInput,
    FindCopiesElsewhereInput,
    FindPauseCopiesInput,
    SettleCopiesInput,
    SettledCopy,
    summarise,
)
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import DatasetSpec

CONNECT_TIMEOUT_S = 10
MAX_LOG_ROUNDS = 5  # the log read again for copies of copies at most this often (each round: one read of it)


@dataclass(frozen=True)
class Elsewhere:
    """Other servers the deployment names for a dataset's connection, and how they reach it."""

    connections: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    port: int = 5432
    dbname: str = ""


class CopiesActivities:
    """Activities over copies of the dataset, on connections chosen by name.

    Args:
        dsn_of: the deployment's DSN for a connection name.
        store: the evidence store (the pause-level activities read the sealed log and seal documents).
        access: dataset access connectors by connection name (``Connectors.access``): the live read
            paths widen the scope the log is read with, as for who-saw-what.
        elsewhere_of: the other servers the deployment names for a connection.
        sources: the audit sources by spec (``Connectors.audit_source``): the database's log is read
            again for the lines that name a copy found.
    """

    def __init__(self, dsn_of: Callable[[str], str], store: EvidenceStore | None = None,
                 access: Callable[[str], object] | None = None,
                 elsewhere_of: Callable[[str], Elsewhere] | None = None,
                 sources: AuditSourceFactory | None = None) -> None:
        self._dsn_of = dsn_of
        self._sources = sources
        self._store = store
        self._exposure = Exposure(store, access) if store is not None else None
        self._elsewhere_of = elsewhere_of or (lambda _name: Elsewhere())

    @asynccontextmanager
    async def _connect(self, name: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            conn = await psycopg.AsyncConnection.connect(self._dsn_of(name), autocommit=True,
                                                         connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise TargetUnavailableError(f"connection {name}: {exc}") from None
        async with conn:
            yield conn

    @activity.defn(name="find_catalog_copies")
    async def find_catalog_copies(self, input: FindCatalogCopiesInput) -> CopiesFound:
        """The log's copies as they stand in the catalog, then publications carrying the dataset or a
        copy, then tables whose rows match the dataset's fingerprint."""
        async with running() as progress, self._connect(input.connection) as conn:
            tables = [t if "." in t else f"{input.schema_name}.{t}" for t in input.tables]
            return CopiesFound(copies=await _in_catalog(conn, tables, input.copies, input.since_xid, progress.report))

    @activity.defn(name="find_copies_elsewhere")
    async def find_copies_elsewhere(self, input: FindCopiesElsewhereInput) -> CopiesFound:
        """On another server the deployment names: foreign tables pointing at the dataset, and tables
        its subscriptions to the found publications fill."""
        async with running(), self._connect(input.connection) as conn:
            location = DatasetLocation(hosts=frozenset(input.hosts), port=input.port, dbname=input.dbname)
            return CopiesFound(copies=await _on_server(conn, input.connection, location, input.tables,
                                                       input.publications))

    @activity.defn(name="contain_copies")
    async def contain_copies(self, input: ContainCopiesInput) -> list[CopyContainment]:
        """Contain each copy on the connection holding it; idempotent, each verified by the database."""
        async with running(), self._connect(input.connection) as conn:
            return await contain_all(conn, input.copies, dataset_tables=input.dataset_tables,
                                     break_glass=input.break_glass_roles)

    # ---------------------------------------------------------- a pause's copies, by document

    @activity.defn(name="find_pause_copies")
    async def find_pause_copies(self, input: FindPauseCopiesInput) -> CopiesSummary:
        """Every copy made in the window: the sealed statement log read again (the dataset's scope as
        who-saw-what builds it), then each dataset connection's catalog (where each logged copy is now,
        its rows; publications; fingerprint matches), then the servers the deployment names for it.
        Sealed once per pause as the found document: a retry returns the sealed one."""
        store = self._need_store()
        key = copies_found_key(input.pause_key)
        async with running() as progress:
            if (ref := await asyncio.to_thread(store.get, key)) is not None:
                return summarise(CopiesDocument.model_validate(await read_recorded(store, ref)), ref)
            logged, log_bundles, scope, who = await self._from_log(input, progress.report)
            # the last round read the log with the widest scope: its lines hold every earlier round's
            last_round = [b for b in log_bundles if b.key.endswith(f"/{_round_of(log_bundles)}")]
            through = await self._through_copies(input.pause_key, scope, who, logged, last_round)
            entries: list[ContainedCopy] = []
            for connection, specs in _by_connection(input.datasets).items():
                tables = _tables(specs)
                names = {d.name for d in specs}
                first = connection == input.datasets[0].connection
                own = [c for c in logged.copies if _belongs(c, names, first)]
                async with self._connect(connection) as conn:
                    found = await _in_catalog(conn, tables, own, None, progress.report)
                entries += [ContainedCopy(current=c, connection=c.server or connection) for c in found]
                entries += await self._elsewhere(connection, tables, found)
            document = CopiesDocument(stage="found", window_start=input.window_start, window_end=input.window_end,
                                      statements=logged.statements, unparsed=logged.unparsed,
                                      copies=_unique(entries), log_bundles=log_bundles,
                                      readers_through_copies=through[0] if through else 0,
                                      who_saw_what=through[1] if through else None)
            ref = await asyncio.to_thread(store.put_json, key, document.model_dump(mode="json"))
            return summarise(document, ref)

    @activity.defn(name="contain_pause_copies")
    async def contain_pause_copies(self, input: ContainPauseCopiesInput) -> CopiesSummary:
        """Contain each copy of the found document on the connection holding it, each verified by the
        database; sealed as the copies document of this round (a retry of the round returns it)."""
        store = self._need_store()
        key = copies_contained_key(input.pause_key, input.round)
        async with running() as progress:
            if (ref := await asyncio.to_thread(store.get, key)) is not None:
                return summarise(CopiesDocument.model_validate(await read_recorded(store, ref)), ref)
            found = CopiesDocument.model_validate(await read_recorded(store, input.found))
            by_connection = _by_connection(input.datasets)
            on: dict[str | None, list[ContainedCopy]] = {}
            for entry in found.copies:
                on.setdefault(entry.connection, []).append(entry)
            done: dict[str, ContainedCopy] = {}
            for connection, entries in on.items():
                specs = by_connection.get(connection or "", [])
                done |= await self._contain_on(connection, entries, _tables(input.datasets),
                                               sorted({r for d in specs for r in d.break_glass_roles}))
                progress.report("contained", len(done), len(found.copies))
            contained = [done[e.current.id] for e in found.copies]
            subjects = await self._subjects(input, contained)
            document = found.model_copy(update={
                "stage": "contained", "copies": contained, "data_subjects": subjects[0] if subjects else None,
                "data_subjects_list": subjects[1] if subjects else None})
            ref = await asyncio.to_thread(store.put_json, key, document.model_dump(mode="json"))
            return summarise(document, ref)

    @activity.defn(name="settle_pause_copies")
    async def settle_pause_copies(self, input: SettleCopiesInput) -> list[SettledCopy]:
        """Before access returns: drop, purge or re-verify each copy as the plan decided, on the connection
        holding it, each checked by the database. Returns copy ids and counts only."""
        store = self._need_store()
        async with running() as progress:
            document = CopiesDocument.model_validate(await read_recorded(store, input.document))
            entries = {c.current.id: c for c in document.copies}
            by_connection = _by_connection(input.datasets)
            done: list[SettledCopy] = []
            for n, decision in enumerate(input.decisions, 1):
                entry = entries.get(decision.copy_id)
                if entry is None or entry.connection is None or decision.action == "waive":
                    done.append(SettledCopy(copy_id=decision.copy_id, action=decision.action,
                                            verified=decision.action == "waive"))
                    continue
                async with self._connect(entry.connection) as conn:
                    if decision.action == "drop":
                        done.append(await drop_copy(conn, entry.current))
                    elif decision.action == "purge" and decision.data_action is not None:
                        done.append(await purge_copy(conn, entry.current, input.data_actions[decision.data_action]))
                    else:
                        specs = by_connection.get(entry.connection, [])
                        done.append(await keep_copy(conn, entry.current,
                                                    sorted({r for d in specs for r in d.break_glass_roles})))
                progress.report("settled", n, len(input.decisions))
            unsettled = [d.copy_id for d in done if not d.verified]
            if unsettled:
                # access must not return while a decision is not done: retried, then the resume is undone
                raise TargetUnavailableError("copies not settled as the plan decided: " + ", ".join(unsettled[:10]))
            return done

    async def _subjects(self, input: ContainPauseCopiesInput,
                        contained: Sequence[ContainedCopy]) -> tuple[int, EvidenceRef] | None:
        """Whose records the copies hold, with the dataset's own (the exposure's data-subjects document):
        the count the notice needs. Stored per round, owner-only like the exposure's; (count, ref)."""
        store = self._need_store()
        key = copies_subjects_key(input.pause_key, input.round)
        if (ref := await asyncio.to_thread(store.get, key)) is not None:
            return int((await asyncio.to_thread(store.read_json, key))["count"]), ref
        counted = [d for d in input.datasets if d.data_subjects is not None]
        if not counted:
            return None
        everyone: set[str] = set()
        exposed = data_subjects_key(input.pause_key)
        if await asyncio.to_thread(store.get, exposed) is not None:
            everyone.update((await asyncio.to_thread(store.read_json, exposed)).get("subjects", []))
        parts: list[dict[str, Any]] = []
        for d in counted:
            assert d.data_subjects is not None
            column = d.data_subjects.column
            for entry in contained:
                copy = entry.current
                if d.name not in copy.datasets or entry.connection is None or copy.state != "quarantined":
                    continue
                async with self._connect(entry.connection) as conn:
                    people = await subjects_in(conn, copy, column)
                if people is not None:
                    everyone.update(people)
                    parts.append({"dataset": d.name, "copy": copy.id, "column": column, "count": len(people),
                                  "subjects": sorted(people)})
        document = {"count": len(everyone), "subjects": sorted(everyone), "copies": parts}
        return len(everyone), await asyncio.to_thread(store.put_json, key, document)

    async def _contain_on(self, connection: str | None, entries: Sequence[ContainedCopy],
                          dataset_tables: Sequence[str], break_glass: Sequence[str]) -> dict[str, ContainedCopy]:
        """The copies one connection holds, contained together: copy id -> entry as containment left it."""
        if connection is None:
            return {e.current.id: e.model_copy(update={"verified": e.current.state != "found"}) for e in entries}
        async with self._connect(connection) as conn:
            done = await contain_all(conn, [e.current for e in entries], dataset_tables=dataset_tables,
                                     break_glass=break_glass)
        return {e.current.id: e.model_copy(update={
            "current": d.contained, "statements": d.statements, "sessions_ended": d.sessions_ended,
            "replication_connections_ended": d.replication_connections_ended, "verified": d.verified,
            "residual": d.residual}) for e, d in zip(entries, done, strict=True)}

    async def _from_log(self, input: FindPauseCopiesInput,
                        report: Callable[..., None]) -> tuple[CopiesFound, list[EvidenceRef], ReadScope, Attribution]:
        """The copies the sealed log shows, then, to a fixed point, the copies of copies: sealing kept the
        lines that name the dataset, so the log is read again for the lines that name a copy found,
        sealed beside the audit bundles, and looked at whole again (returned: those bundles)."""
        store, exposure = self._need_store(), self._exposure
        assert exposure is not None
        scope, who = read_scope([await exposure.paths(input.pause_key, d) for d in input.datasets])
        tool = None
        if input.paused_at is not None:
            roles = []
            for connection in _by_connection(input.datasets):
                async with self._connect(connection) as conn:
                    roles.append(str((await (await conn.execute("SELECT current_user")).fetchone() or ("",))[0]))
            tool = (roles, input.paused_at)
        finder = CopyFinder(scope, dataset_of=who.dataset, tool=tool)
        await self._feed(finder, input.bundles)
        report("bundles read", len(input.bundles))
        found, bundles, named = finder.finish(), [], set[str]()
        for round_ in range(1, MAX_LOG_ROUNDS + 1):
            names = _relation_names(found.copies)
            if names <= named or input.window_start is None or input.window_end is None or self._sources is None:
                break
            named |= names
            widened = ReadScope.of(tables=set(scope.tables) | named, exposers=dict(scope.exposers),
                                   whole_schemas=scope.whole_schemas)
            sealed = []
            for spec in input.log_sources:
                source = self._sources(spec, input.program, _tables(input.datasets))
                if not isinstance(source, PostgresLogSource):
                    continue
                key = copies_log_key(input.pause_key, spec.name, round_)
                ref, _ = await seal_log(store, key, source.scoped(widened), input.window_start, input.window_end)
                sealed.append(ref)
            finder = CopyFinder(scope, dataset_of=who.dataset, tool=tool)
            await self._feed(finder, [ref.key for ref in sealed])
            bundles += sealed
            found = finder.finish()
            report("log read again for copies of copies", round_)
        return found, bundles, scope, who

    async def _through_copies(self, pause_key: str, scope: ReadScope, who: Attribution, found: CopiesFound,
                              bundles: Sequence[EvidenceRef]) -> tuple[int, EvidenceRef] | None:
        """Who saw what again over the lines that name a copy, each copy a way to the tables it carries: a
        reader of a copy read the data ("through" the copy). Stored once per pause; (readers, ref)."""
        if not bundles:
            return None
        store = self._need_store()
        exposers = _copy_exposers(found.copies, scope)
        widened = ReadScope.of(tables=set(scope.tables), exposers={**scope.exposers, **exposers},
                               whole_schemas=scope.whole_schemas)
        report = await build_who_saw_what(widened, who, (store.iter_bundle(b.key) for b in bundles))
        ref = await asyncio.to_thread(store.put_json, copies_exposure_key(pause_key), report.model_dump(mode="json"))
        readers = {e.user for e in report.entries if e.how == "through" and e.via in exposers and e.reads}
        return len(readers), ref

    async def _feed(self, finder: CopyFinder, keys: Sequence[str]) -> None:
        store = self._need_store()
        for key in keys:
            records = iter(store.iter_bundle(key))
            while batch := await asyncio.to_thread(lambda: list(itertools.islice(records, READ_BATCH))):  # noqa: B023
                finder.add(batch)

    async def _elsewhere(self, connection: str, tables: Sequence[str], found: Sequence[Copy]) -> list[ContainedCopy]:
        where = self._elsewhere_of(connection)
        if not where.connections:
            return []
        location = DatasetLocation(hosts=frozenset(where.hosts), port=where.port, dbname=where.dbname)
        carried = [*tables, *(c.qualified for c in found if c.qualified and c.server is None)]
        publications = [c.name for c in found if c.kind == "publication" and c.name]
        out: list[ContainedCopy] = []
        for server in where.connections:
            async with self._connect(server) as conn:
                out += [ContainedCopy(current=c, connection=server)
                        for c in await _on_server(conn, server, location, [t for t in carried if t], publications)]
        return out

    def _need_store(self) -> EvidenceStore:
        if self._store is None:
            raise ConfigError("the copies activities need the evidence store")
        return self._store


async def _in_catalog(conn: psycopg.AsyncConnection[Any], tables: Sequence[str], copies: Sequence[Copy],
                      since_xid: int | None, report: Callable[..., None]) -> list[Copy]:
    resolved = [await resolve(conn, c) for c in copies]
    report("resolved", len(resolved))
    carried = [*tables, *(c.qualified for c in resolved if c.qualified and c.state != "gone")]
    publications = await find_publications(conn, [t for t in carried if t])
    known = [c.qualified for c in resolved if c.qualified]
    fingerprinted = await find_by_fingerprint(conn, tables, skip=[k for k in known if k], since_xid=since_xid)
    return [*resolved, *publications, *fingerprinted]


async def _on_server(conn: psycopg.AsyncConnection[Any], server: str, location: DatasetLocation,
                     tables: Sequence[str], publications: Sequence[str]) -> list[Copy]:
    found = await find_foreign_tables(conn, server=server, location=location, tables=tables)
    if publications:
        found += await find_subscribed_tables(conn, server=server, location=location, publications=publications)
    return found


def _round_of(bundles: Sequence[EvidenceRef]) -> str:
    """The last round the log was read again in (its bundles' keys end in it)."""
    return bundles[-1].key.rpartition("/")[2] if bundles else ""


def _copy_exposers(copies: Sequence[Copy], scope: ReadScope) -> dict[str, Exposer]:
    """Each relation copy as a way to the dataset tables it carries, through the copies it was made from."""
    sources: dict[str, set[str]] = {}
    for c in copies:
        for name in _relation_names([c]):
            sources.setdefault(name, set()).update(c.sources)

    def reach(name: str, seen: frozenset[str]) -> set[str]:
        out: set[str] = set()
        for s in sources.get(name, ()):
            if s in scope.tables:
                out.add(s)
            elif s in sources and s not in seen:
                out |= reach(s, seen | {s})
        return out

    return {n: Exposer(kind="view", reaches=tuple(sorted(r))) for n in sources if (r := reach(n, frozenset({n})))}


def _relation_names(copies: Iterable[Copy]) -> set[str]:
    """schema.name of every relation a copy found in this database is, or may be, called by."""
    return {n for c in copies if c.kind != CopyKind.TEMPORARY_TABLE and c.server is None
            for n in (c.qualified, *c.candidates) if n}


def _by_connection(datasets: Iterable[DatasetSpec]) -> dict[str, list[DatasetSpec]]:
    out: dict[str, list[DatasetSpec]] = {}
    for d in datasets:
        out.setdefault(d.connection, []).append(d)
    return out


def _tables(specs: Iterable[DatasetSpec]) -> list[str]:
    return [f"{d.schema_name}.{t}" for d in specs for t in d.tables]


def _belongs(copy: Copy, datasets: set[str], first: bool) -> bool:
    """A logged copy is looked up on the connection of a dataset it carries; one that names none (it read
    only through something the scope could not attribute) on the first dataset's."""
    return bool(datasets.intersection(copy.datasets)) if copy.datasets else first


def _unique(entries: Iterable[ContainedCopy]) -> list[ContainedCopy]:
    seen: dict[str, ContainedCopy] = {}
    for e in entries:
        seen.setdefault(e.current.id, e)
    return list(seen.values())
