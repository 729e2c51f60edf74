"""Copies of the dataset made in the exposure window, found in PostgreSQL's own statement log.

``CopyFinder`` re-reads the sealed ``pglog`` records in order, as the server saw them. Each log
message is split into its statements (``copies_sql``, PostgreSQL's own parser, bounded like
``statement_reads``); what a statement reads is ``statement_reads.analyse``'s answer against a
scope that grows as copies are found: the dataset's tables and what exposes them (views, routines),
then every copy found so far, views defined over them, and each session's temporary copies. A copy
read later in the window is therefore followed to the copy made from it, in one pass (the log is in
time order, and a copy is read only after it was made): the fixed point within the window.

A statement is a copy when it reads that scope and puts rows somewhere: ``CREATE TABLE AS``,
``SELECT INTO``, ``INSERT``/``MERGE``/``UPDATE ... FROM``, a materialized view, a temporary table
(and, through it, the permanent table a later ``INSERT`` fills: laundering), ``COPY TO`` a file, a
program or the client, and anything ``pg_dump`` reads. Dynamic SQL (``DO``, routines defined in the
window, ``PREPARE``) that reaches the scope and may write is a *possible* copy. A statement whose
session's next line is its ERROR made nothing; neither did a transaction that rolled back (rows a
client or program received before stay listed: they left). Renames, moves between schemas and drops
of a copy are followed when they succeed.

Row counts are not in a statement log: the catalog side counts the copies it finds in the
database. What the log cannot name (rows copied by code the parser cannot follow) is left to the
fingerprint match (``copies_fingerprint``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from pausegate.analysis.copies_records import (
    FoundCopy,
    HeldMessage,
    PendingCopy,
    SessionState,
    StatementContext,
    executed,
)
from pausegate.analysis.copies_sql import Change, Relation, Statement, Target, may_copy, qualified_candidates, split
from pausegate.analysis.pglog_lines import (
    ERRORS,
    decode_entry,
    may_set_path,
    original_line,
    parse_pg_time,
    statement_text,
)
from pausegate.analysis.statement_reads import (
    Exposer,
    Read,
    ReadScope,
    StatementReads,
    analyse,
    prefilter,
    statement_kind,
)
from pausegate.models.copies import MAX_STATEMENT_CHARS, CopiesFound, Copy, CopyEvidence, CopyKind, CopyState

SCOPE_CACHE_ENTRIES = 256
ANALYSIS_CACHE_ENTRIES = 20_000  # statements split and analysed, by text: a log repeats its statements
MAX_EVIDENCE = 20  # statements kept per copy (all of them are counted)
TEMP_SCHEMA = "pg_temp"
_SESSION_TEMP = "~pg_temp"  # a session's own temporary schema, first on its path (no real schema is named so)
_DUMP_APPLICATIONS = ("pg_dump", "pg_dumpall")
_TRANSACTION_WORDS = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"})
_TRANSACTION_HINTS = tuple(w.lower() for w in _TRANSACTION_WORDS)
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_$")
_WORD_BREAKS = str.maketrans({chr(c): " " for c in range(128) if chr(c) not in _IDENT_CHARS})


class CopyFinder:
    """Copies made over the window, from sealed ``pglog`` records (``add``), then ``finish``.

    Args:
        scope: the dataset's tables and what exposes them (``who_saw_what.read_scope``).
        dataset_of: which dataset a scope table belongs to (``Attribution.dataset``).
        existing_schemas: schemas that exist, when known: an unqualified new table is then placed
            in the first of them on the path, as the server does; otherwise every schema of the
            path is a candidate, and the catalog side tells which one holds it.
        tool: the roles pausegate itself connects as, and when the pause began: from then on their
            statements are containment's own (probes through temporary routines, revokes, the
            quarantine), not copies. Before it, they are read like anyone's.
    """

    def __init__(self, scope: ReadScope, *, dataset_of: Callable[[str], str | None] | None = None,
                 existing_schemas: Collection[str] | None = None,
                 tool: tuple[Collection[str], datetime] | None = None) -> None:
        self._base = scope
        self._tool = (frozenset(tool[0]), tool[1]) if tool is not None else None
        self._dataset_of = dataset_of or (lambda _table: None)
        self._existing = frozenset(existing_schemas) if existing_schemas is not None else None
        self._found: dict[str, FoundCopy] = {}
        self._by_table: dict[str, str] = {}  # schema.name of a live copy -> its key
        self._views: dict[str, Exposer] = {}
        self._sessions: dict[str, SessionState] = {}
        self._held: dict[str, HeldMessage] = {}
        self._version = 0
        self._named: set[str] = set()  # every name a copy, a view over one or a temporary copy had (plain)
        self._named_odd: set[str] = set()  # the same, for names that are not plain identifiers
        self._relnames: dict[str, set[str]] = {}  # a copy's relation name -> its schema.name candidates
        self._index_version = -1
        self._scopes: dict[tuple[frozenset[str], frozenset[str]], ReadScope] = {}
        self._splits: dict[str, tuple[list[Statement], str | None]] = {}
        self._analysed: dict[tuple[str, int, tuple[str, ...], str | None], StatementReads] = {}
        self._analysed_base: dict[tuple[str, int, tuple[str, ...], str | None], StatementReads] = {}
        self.statements = 0
        self.unparsed = 0

    # ---------------------------------------------------------- input

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Sealed ``pglog`` records, in log order."""
        for record in records:
            raw = original_line(record)
            entry = decode_entry(raw) if raw is not None else None
            if entry is not None:
                self.add_entry(entry, record)

    def add_entry(self, entry: Mapping[str, Any], record: Mapping[str, Any] | None = None) -> None:
        """One decoded jsonlog entry (``record``: where its line lies in the sealed log)."""
        session_id = str(entry.get("session_id", ""))
        line_num = entry.get("line_num")
        line_num = line_num if isinstance(line_num, int) else None
        error = entry.get("error_severity") in ERRORS
        held = self._held.pop(session_id, None)
        session = self._sessions.setdefault(session_id, SessionState())
        if held is not None:
            failed = error and held.line_num is not None and line_num == held.line_num + 1
            self._settle(session, held, failed)
        if error:
            if session.in_tx:
                session.tx_failed = True
            return
        sql = statement_text(str(entry.get("message", "")))
        if sql is None:
            return
        try:
            at = parse_pg_time(str(entry["timestamp"]))
        except (KeyError, ValueError):
            return
        self.statements += 1
        user = str(entry.get("user") or "") or None
        if self._tool is not None and user in self._tool[0] and at >= self._tool[1]:
            return
        if not self._may_matter(session, sql, user):
            return
        app = entry.get("application_name")
        client = entry.get("remote_host")
        context = StatementContext(
            session_id=session_id, user=user, at=at,
            application=app if isinstance(app, str) and app else None,
            client=client if isinstance(client, str) and client else None,
            file=str(record["file"]) if record and "file" in record else None,
            offset=int(record["offset"]) if record and "offset" in record else None,
            statement=sql[:MAX_STATEMENT_CHARS], line_num=line_num,
        )
        self._held[session_id] = self._message(session, sql, context)

    def _may_matter(self, session: SessionState, sql: str, user: str | None) -> bool:
        """Cheap and linear: False only for a message that reads nothing of the scope (the
        prefilter's promise), controls no transaction, sets no search_path, makes no temporary
        table and drops no schema. Most of a log is such messages; they are not parsed."""
        folded = sql.casefold()
        if (any(w in folded for w in _TRANSACTION_HINTS) and statement_kind(sql) in _TRANSACTION_WORDS) or (
                may_set_path(sql) or "temp" in folded or ("drop" in folded and "schema" in folded)):
            return True
        # the dataset's own names through the prefilter; the copies' (a growing list) by word
        if prefilter(sql, self._base, search_path=session.local_path or session.path, user=user):
            return True
        if not self._named.isdisjoint(folded.translate(_WORD_BREAKS).split()):
            return True
        return any(n in folded for n in self._named_odd)

    def _remember(self, names: Iterable[str]) -> None:
        for qualified in names:
            name = qualified.rpartition(".")[2].casefold()
            (self._named if name and set(name) <= _IDENT_CHARS else self._named_odd).add(name)

    # ---------------------------------------------------------- one message

    def _message(self, session: SessionState, sql: str, cx: StatementContext) -> HeldMessage:
        held = HeldMessage(line_num=cx.line_num, undo=[])
        statements, error = self._split(sql)
        if error is not None:
            self.unparsed += 1
            if may_copy(sql) and prefilter(sql, self._scope_for(session, sql), search_path=self._path(session),
                                           user=cx.user):
                self._add(held, session, cx, PendingCopy(CopyKind.DYNAMIC, "possible", key_place=True,
                                                      note=f"not parsed ({error}): it may write what it reads"))
            return held
        for st in statements:
            self._statement(session, st, cx, held)
        return held

    def _statement(self, session: SessionState, st: Statement, cx: StatementContext, held: HeldMessage) -> None:
        if st.transaction is not None:
            self._transaction(session, st.transaction.action)
            return
        result = self._analyse(session, st.text, cx.user)
        if result.search_path is not None:
            if result.search_path_local:
                session.local_path = result.search_path
            else:
                session.path, session.local_path = result.search_path, None
        reads = list(result.reads)
        if st.prepare is not None:
            # nothing is copied until it is executed; then it reads what its definition names
            session.prepared[st.prepare] = (st.target, [executed(r) for r in reads])
            return
        target = st.target
        if st.execute is not None:
            target, reads = session.prepared.get(st.execute, (None, []))
        elif target is not None and target.execute is not None:
            reads = session.prepared.get(target.execute, (None, []))[1]
        for change in st.changes:
            names = self._names(session, change.relation, cx.user)
            if change.action == "create_temp":
                session.temps.setdefault(change.relation.name, None)
            elif change.action == "view":
                if reads:
                    self._remember(names)
                    self._views.update(dict.fromkeys(
                        names, Exposer(kind="view", reaches=tuple(sorted({r.object for r in reads})))))
                    self._version += 1
            else:
                self._done(held, session, self._change(session, change, names))
        if target is not None and target.relation is not None:
            self._relation_copy(session, target, reads, cx, held)
        elif target is not None:
            self._outside_copy(session, target, reads, cx, held)
        elif cx.application is not None and cx.application.startswith(_DUMP_APPLICATIONS):
            sure = [r for r in reads if r.how != "possible"]
            if sure:
                self._add(held, session, cx, PendingCopy(CopyKind.CLIENT_DUMP, "left_database", reads=sure,
                                                      destination="client"))
        elif st.dynamic and reads:
            self._add(held, session, cx, PendingCopy(CopyKind.DYNAMIC, "possible", reads=reads, key_place=True,
                                                  note="dynamic SQL that may write what it reads"))
        elif reads and "dblink" in st.text.casefold() and may_copy(st.text):
            self._add(held, session, cx, PendingCopy(CopyKind.DYNAMIC, "possible", reads=reads, key_place=True,
                                                  note="sent through dblink: rows may have gone to another database"))

    def _relation_copy(self, session: SessionState, target: Target, reads: list[Read], cx: StatementContext,
                       held: HeldMessage) -> None:
        assert target.relation is not None
        rel = target.relation
        temp = (rel.persistence == "temporary" or rel.schema == TEMP_SCHEMA
                or (rel.schema is None and rel.name in session.temps))
        names = (f"{TEMP_SCHEMA}.{rel.name}",) if temp else self._names(session, rel, cx.user, creating=True)
        # an INSERT ... ON CONFLICT reads its own target: not a source
        reads = [r for r in reads if r.object not in names and not (temp and self._temp_name(r.object) == rel.name)]
        if not reads or any(self._in_dataset(n) for n in names):
            if temp:
                session.temps.setdefault(rel.name, None)
            return
        sure = any(r.how != "possible" for r in reads)
        state: CopyState = "possible" if target.no_data or not sure else "found"
        note = ("defined WITH NO DATA: a REFRESH fills it" if target.no_data
                else None if sure else "what it read is only possibly the dataset's")
        kind = CopyKind.TEMPORARY_TABLE if temp else target.kind
        pending = PendingCopy(kind, state, reads=reads, relation=Relation(TEMP_SCHEMA if temp else rel.schema, rel.name,
                                                                       "temporary" if temp else rel.persistence),
                           candidates=names, note=note, temp=temp)
        key = self._add(held, session, cx, pending)
        if temp:
            session.temps[rel.name] = key
            self._remember(names)

    def _outside_copy(self, session: SessionState, target: Target, reads: list[Read], cx: StatementContext,
                      held: HeldMessage) -> None:
        if not reads:
            return
        sure = any(r.how != "possible" for r in reads)
        kind = target.kind
        state: CopyState = "found" if kind == CopyKind.COPY_TO_FILE else "left_database"
        if kind == CopyKind.COPY_TO_CLIENT and cx.application and cx.application.startswith(_DUMP_APPLICATIONS):
            kind = CopyKind.CLIENT_DUMP
        # a whole table sent out: how many rows it then held is not in the log, but the table can say
        # how many it holds now (``copies_catalog.resolve``)
        whole = next((r.object for r in reads if r.how == "direct"), None) if target.whole else None
        self._add(held, session, cx, PendingCopy(kind, state if sure else "possible", reads=reads,
                                              destination=target.destination, whole_source=whole))

    # ---------------------------------------------------------- bookkeeping

    def _add(self, held: HeldMessage, session: SessionState, cx: StatementContext, p: PendingCopy) -> str:
        if p.temp:
            key = f"temp|{cx.session_id}|{p.candidates[0]}"
        elif p.candidates:
            key = "rel|" + "|".join(p.candidates)
        elif p.key_place:
            key = f"place|{cx.session_id}|{cx.line_num}|{cx.file}|{cx.offset}|{cx.at.isoformat()}"
        else:
            key = f"out|{p.kind}|{cx.user}|{cx.application}|{cx.client}|{p.destination}|" + "|".join(
                sorted({self._source(session, r.object) for r in p.reads}))
        found = self._found.get(key)
        created = found is None
        evidence = CopyEvidence(source="statement", at=cx.at, user=cx.user, session=cx.session_id,
                                application=cx.application, client=cx.client, file=cx.file, offset=cx.offset,
                                statement=cx.statement)
        if found is None:
            found = self._found[key] = FoundCopy(
                key=key, kind=p.kind, state=p.state, relation=p.relation, candidates=p.candidates,
                destination=p.destination, session=cx.session_id if p.temp else None, creator=cx.user,
                created_at=cx.at, application=cx.application, client=cx.client, note=p.note,
                whole_source=p.whole_source,
                id=hashlib.sha256(f"{key}|{cx.file}|{cx.offset}|{cx.at.isoformat()}".encode()).hexdigest()[:16])
            if not p.temp:
                for name in p.candidates:
                    self._by_table[name] = key
                self._remember(p.candidates)
            self._version += 1
        elif found.state in ("possible", "gone") and p.state != "possible":
            found.state, found.note = p.state, p.note  # filled now, or made again after a drop
            if not p.temp:
                self._by_table.update(dict.fromkeys(found.candidates, key))
        found.times += 1
        if len(found.evidence) < MAX_EVIDENCE:
            found.evidence.append(evidence)
        for r in p.reads:
            source = self._source(session, r.object)
            found.sources.setdefault(source, None)
            found.datasets.update(dict.fromkeys(self._datasets(session, r.object)))
            if found.via is None and r.how == "through":
                found.via = r.via
        if found.state != "left_database":  # rows sent to a client or program left, whatever came next
            self._done(held, session, functools.partial(self._forget, key, created))
        return key

    @staticmethod
    def _done(held: HeldMessage, session: SessionState, undo: Callable[[], None] | None) -> None:
        if undo is not None:
            held.undo.append(undo)
            if session.in_tx:
                session.tx_undo.append(undo)

    def _forget(self, key: str, created: bool) -> None:
        """What a failed statement or a rolled-back transaction made does not exist."""
        found = self._found.get(key)
        if found is None:
            return
        if created:
            del self._found[key]
            for name, k in list(self._by_table.items()):
                if k == key:
                    del self._by_table[name]
            for s in self._sessions.values():
                s.temps.update({n: None for n, k in s.temps.items() if k == key})
            self._version += 1
        else:
            found.times -= 1
            if found.evidence:
                found.evidence.pop()

    def _settle(self, session: SessionState, held: HeldMessage, failed: bool) -> None:
        if not failed:
            return
        if session.in_tx:
            session.tx_failed = True  # taken back at its end, with the rest of the transaction
            return
        # the statements of one message run in one implicit transaction: all of it is taken back
        for undo in reversed(held.undo):
            undo()

    def _transaction(self, session: SessionState, action: str) -> None:
        if action == "begin":
            session.in_tx, session.tx_failed, session.tx_undo = True, False, []
        elif action in ("commit", "rollback") and session.in_tx:
            if action == "rollback" or session.tx_failed:
                for undo in reversed(session.tx_undo):
                    undo()
            session.in_tx, session.tx_failed, session.tx_undo, session.local_path = False, False, [], None

    def _change(self, session: SessionState, change: Change, names: tuple[str, ...]) -> Callable[[], None] | None:
        """Follows a drop, rename, move or refresh of a copy; returns how to take it back."""
        rel = change.relation
        if rel.schema is None and rel.name in session.temps:
            temp_key = session.temps[rel.name]
            if change.action != "drop":
                return None
            session.temps.pop(rel.name, None)
            temp = self._found.get(temp_key) if temp_key is not None else None
            before = temp.state if temp is not None else None
            if temp is not None:
                temp.state = "gone"

            def undo_temp() -> None:
                session.temps[rel.name] = temp_key
                if temp is not None and before is not None:
                    temp.state = before
            return undo_temp
        if change.action == "drop_schema":
            return self._drop_schema(rel.schema or "")
        key = next((self._by_table[n] for n in names if n in self._by_table), None)
        found = self._found.get(key) if key is not None else None
        if found is None or key is None:
            return None
        snapshot = (found.state, found.note, found.candidates, found.relation)
        if change.action == "drop":
            found.state, found.note = "gone", "dropped in the window"
            self._unindex(key)
        elif change.action == "refresh" and found.state == "possible" and found.kind == CopyKind.MATERIALIZED_VIEW:
            found.state, found.note = "found", None
        elif change.action in ("rename", "set_schema") and change.new:
            old = [n for n in names if self._by_table.get(n) == key]
            found.candidates = tuple(f"{change.new}.{n.rpartition('.')[2]}" if change.action == "set_schema"
                                     else f"{n.rpartition('.')[0]}.{change.new}" for n in old)
            self._unindex(key)
            self._by_table.update(dict.fromkeys(found.candidates, key))
            self._remember(found.candidates)
            if found.relation is not None:
                schema = change.new if change.action == "set_schema" else found.relation.schema
                name = change.new if change.action == "rename" else found.relation.name
                found.relation = Relation(schema, name, found.relation.persistence)
        self._version += 1

        def undo() -> None:
            self._unindex(key)
            found.state, found.note, found.candidates, found.relation = snapshot
            if found.state != "gone":
                self._by_table.update(dict.fromkeys(found.candidates, key))
            self._version += 1
        return undo

    def _drop_schema(self, schema: str) -> Callable[[], None] | None:
        """DROP SCHEMA ... CASCADE: every copy in it is gone."""
        gone = [f for f in self._found.values() if f.state != "gone" and f.relation is not None and f.session is None
                and (f.relation.schema == schema or any(c.rpartition(".")[0] == schema for c in f.candidates))
                and (f.relation.schema in (schema, None))]
        if not gone:
            return None
        before = [(f, f.state, f.note, [n for n, k in self._by_table.items() if k == f.key]) for f in gone]
        for f in gone:
            f.state, f.note = "gone", f"schema {schema} dropped in the window"
            self._unindex(f.key)
        self._version += 1

        def undo() -> None:
            for f, state, note, names in before:
                f.state, f.note = state, note
                self._by_table.update(dict.fromkeys(names, f.key))
            self._version += 1
        return undo

    def _unindex(self, key: str) -> None:
        for name in [n for n, k in self._by_table.items() if k == key]:
            del self._by_table[name]

    # ---------------------------------------------------------- names and scopes

    def _path(self, session: SessionState) -> tuple[str, ...]:
        path = session.local_path or session.path
        return (_SESSION_TEMP, *path) if any(k for k in session.temps.values()) else path

    def _names(self, session: SessionState, rel: Relation, user: str | None, *,
               creating: bool = False) -> tuple[str, ...]:
        names = qualified_candidates(rel, session.local_path or session.path, user)
        if self._existing is not None and rel.schema is None:
            existing = tuple(n for n in names if n.rpartition(".")[0] in self._existing)
            names = existing[:1] if creating else existing or names
        return names

    def _in_dataset(self, name: str) -> bool:
        return name in self._base.tables or name.rpartition(".")[0] in self._base.whole_schemas

    @staticmethod
    def _temp_name(obj: str) -> str | None:
        schema, _, name = obj.rpartition(".")
        return name if schema in (_SESSION_TEMP, TEMP_SCHEMA) else None

    def _source(self, session: SessionState, obj: str) -> str:
        temp = self._temp_name(obj)
        if temp is not None:
            return f"{TEMP_SCHEMA}.{temp}"
        return obj

    def _datasets(self, session: SessionState, obj: str) -> list[str]:
        temp = self._temp_name(obj)
        key = session.temps.get(temp) if temp is not None else self._by_table.get(obj)
        if key is not None and key in self._found:
            return list(self._found[key].datasets)
        dataset = self._dataset_of(obj)
        return [dataset] if dataset else []

    def _split(self, sql: str) -> tuple[list[Statement], str | None]:
        """``split``, once per distinct message text (a log repeats its statements)."""
        done = self._splits.get(sql)
        if done is None:
            if len(self._splits) >= ANALYSIS_CACHE_ENTRIES:
                self._splits.clear()
            done = self._splits[sql] = split(sql)
        return done

    def _analyse(self, session: SessionState, text: str, user: str | None) -> StatementReads:
        """``analyse`` against the scope the statement needs, once per text, scope, path and user."""
        scope = self._scope_for(session, text)
        path = self._path(session)
        # the dataset's own scope never changes; a widened one lives until the copies found change
        cache = self._analysed_base if scope is self._base else self._analysed
        key = (text, id(scope), path, user)
        done = cache.get(key)
        if done is None:
            if len(cache) >= ANALYSIS_CACHE_ENTRIES:
                cache.clear()
            done = cache[key] = analyse(text, scope, search_path=path, user=user)
        return done

    def _scope_for(self, session: SessionState, sql: str) -> ReadScope:
        """The dataset's scope, widened by the copies, views over them and temporary copies whose name
        the statement holds: a statement can only read what it names (or reach through what it
        names), and a scope of every copy would be rebuilt for each copy found."""
        folded = sql.casefold()
        mentioned = self._named.intersection(folded.translate(_WORD_BREAKS).split())
        mentioned.update(n for n in self._named_odd if n in folded)
        if not mentioned:
            return self._base
        if self._index_version != self._version:
            self._relnames.clear()
            for qualified in self._by_table:
                self._relnames.setdefault(qualified.rpartition(".")[2].casefold(), set()).add(qualified)
            self._scopes.clear()
            self._analysed.clear()
            self._index_version = self._version
        tables = {q for n in mentioned for q in self._relnames.get(n, ())}
        tables.update(f"{schema}.{n}" for n, k in session.temps.items() if k is not None and n.casefold() in mentioned
                      for schema in (_SESSION_TEMP, TEMP_SCHEMA))
        views = {q: e for q, e in self._views.items() if q.rpartition(".")[2].casefold() in mentioned}
        key = (frozenset(tables), frozenset(views))
        scope = self._scopes.get(key)
        if scope is None:
            if len(self._scopes) >= SCOPE_CACHE_ENTRIES:
                self._scopes.clear()
                self._analysed.clear()
            scope = self._scopes[key] = ReadScope.of(
                tables=set(self._base.tables) | tables, exposers={**self._base.exposers, **views},
                whole_schemas=self._base.whole_schemas)
        return scope

    # ---------------------------------------------------------- output

    def finish(self) -> CopiesFound:
        """Every copy found, in the order they were made (statements whose next line never came succeeded)."""
        for session_id, held in list(self._held.items()):
            self._settle(self._sessions[session_id], held, False)
        self._held.clear()
        copies = [self._copy(f) for f in self._found.values()]
        copies.sort(key=lambda c: (c.created_at or datetime.min, c.id))
        return CopiesFound(copies=copies, statements=self.statements, unparsed=self.unparsed)

    def _copy(self, f: FoundCopy) -> Copy:
        rel = f.relation
        schema = rel.schema if rel else None
        if rel is not None and schema is None and self._existing is not None and len(f.candidates) == 1:
            schema = f.candidates[0].rpartition(".")[0]  # the one schema of the path that exists
        return Copy(
            id=f.id, kind=f.kind, schema_name=schema, name=rel.name if rel else None,
            candidates=() if rel is None or schema else f.candidates, destination=f.destination,
            creator=f.creator, created_at=f.created_at, application=f.application, client=f.client,
            sources=tuple(f.sources), datasets=tuple(sorted(f.datasets)), via=f.via, evidence=tuple(f.evidence),
            whole_source=f.whole_source,
            state=f.state, note=f.note if f.times <= 1 else "; ".join(filter(None, (f.note, f"{f.times} statements"))),
        )


def find_copies(records: Iterable[Mapping[str, Any]], scope: ReadScope, *,
                dataset_of: Callable[[str], str | None] | None = None,
                existing_schemas: Collection[str] | None = None) -> CopiesFound:
    """``CopyFinder`` over ``records`` at once."""
    finder = CopyFinder(scope, dataset_of=dataset_of, existing_schemas=existing_schemas)
    finder.add(records)
    return finder.finish()
