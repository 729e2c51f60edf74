"""Who saw what: which login roles read which of a dataset's tables, and by which path, derived
from the sealed lines of the database's own log (``connectors.audit.pglog`` seals them).

``read_scope`` builds what the analyser resolves names against from each dataset's recorded
``ExposureScope`` (its tables, and the views, materialized views and SECURITY DEFINER routines in
any schema the revocation side closed) and, where the database was asked, every further routine
that reads them (``catalog.load_read_paths``).

``WhoSawWhatBuilder`` re-reads the sealed lines in order, as PostgreSQL saw them: per session
(``session_id``), a statement's outcome is the ERROR line that follows it (``line_num`` + 1), and
``SET search_path`` (or ``set_config``) changes how later statements of the session resolve
unqualified names, unless it failed. Statements are analysed in batches off the event loop. A
statement the parser cannot read is counted as *unparsed*, per role, with where its line lies.

Each entry says how the role reached the table: ``direct``, ``through <view or routine>`` or
``possible (<why>)`` (dynamic SQL, a DO block, plain EXPLAIN, a definition, a SET LOCAL
search_path that may no longer have held).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field

from pausegate.analysis.pglog_lines import (
    ERRORS,
    capped_fields,
    decode_entry,
    may_set_path,
    original_line,
    parse_pg_time,
    statement_text,
)
from pausegate.analysis.statement_reads import (
    DEFAULT_SEARCH_PATH,
    Exposer,
    How,
    Read,
    ReadScope,
    StatementReads,
    analyse_each_off_loop,
)
from pausegate.models.access import ExposureScope, ReadPath
from pausegate.models.base import Model

BATCH = 512  # statements per trip off the event loop
CACHE_ENTRIES = 4096  # analyses remembered (cleared when full: memory stays bounded)
CACHE_STATEMENT_CHARS = 4096  # longer statements are not remembered
MAX_LISTED_UNPARSED = 1000  # unparsed statements listed by place; all of them are counted
OVER_BUDGET = StatementReads(parsed=False, kind="over_budget",
                             error="not parsed: the exposure step's budget of distinct statements was spent")
_VIEW_KINDS = {"view": "view", "materialized_view": "matview"}
_BASE_KINDS = frozenset({"table", "partitioned_table", "foreign_table", "view", "materialized_view"})


# ---------------------------------------------------------------- the scope


@dataclass(frozen=True)
class DatasetPaths:
    """What is known of one dataset's read paths."""

    name: str
    schema: str
    tables: tuple[str, ...] = ()  # empty: the whole schema
    recorded: ExposureScope | None = None  # the scope recorded before revoking
    live: tuple[ReadPath, ...] = ()  # read from the catalog (load_read_paths)


@dataclass
class Attribution:
    """Which dataset a table the analyser reports belongs to."""

    tables: dict[str, str] = field(default_factory=dict)
    schemas: dict[str, str] = field(default_factory=dict)  # whole-schema datasets

    def dataset(self, table: str) -> str | None:
        return self.tables.get(table) or self.schemas.get(table.rpartition(".")[0])


def _routine(name: str) -> str:
    """``schema.name(argument types)`` as a call names it: ``schema.name``."""
    return name.partition("(")[0]


def read_scope(datasets: Iterable[DatasetPaths]) -> tuple[ReadScope, Attribution]:
    """One scope over the datasets, and which dataset each table belongs to."""
    tables: set[str] = set()
    whole: set[str] = set()
    reach: dict[str, tuple[str, set[str], bool]] = {}  # name -> (kind, tables reached, dynamic)
    who = Attribution()

    def add(name: str, kind: str, reaches: Iterable[str], dynamic: bool) -> None:
        old = reach.get(name, (kind, set(), False))
        reach[name] = (old[0], old[1] | set(reaches), old[2] or dynamic)

    for d in datasets:
        if d.tables:
            own = {f"{d.schema}.{t}" for t in d.tables}
            tables |= own
            who.tables.update(dict.fromkeys(own, d.name))
        else:
            whole.add(d.schema)
            who.schemas[d.schema] = d.name

        def base(name: str, d: DatasetPaths = d) -> bool:
            schema, _, rel = name.rpartition(".")
            return schema == d.schema and (not d.tables or rel in d.tables)

        for obj in d.recorded.object_details if d.recorded else ():
            if obj.kind in _VIEW_KINDS and not base(obj.name):
                add(obj.name, _VIEW_KINDS[obj.kind], obj.depends_on, False)
            elif obj.kind == "function":
                add(_routine(obj.name), "function", obj.depends_on, False)
            elif obj.kind in _BASE_KINDS and base(obj.name) and d.tables:
                tables.add(obj.name)
                who.tables[obj.name] = d.name
        for path in d.live:
            if not base(path.name):
                add(path.name, path.kind, path.reaches, path.dynamic)
    exposers = {
        name: Exposer(kind=kind, reaches=tuple(sorted(reaches)), dynamic=dynamic)  # type: ignore[arg-type]
        for name, (kind, reaches, dynamic) in sorted(reach.items())
        if reaches or dynamic
    }
    return ReadScope.of(tables=tables, exposers=exposers, whole_schemas=whole), who


# ---------------------------------------------------------------- the report


class ObjectReads(Model):
    """How one login role reached one dataset table, by one path, over the window."""

    dataset: str | None = None
    user: str
    object: str = Field(description="The dataset table reached, schema.table.")
    how: How = "direct"
    via: str | None = Field(default=None, description="The view, routine or construct it went through.")
    path: str = Field(default="direct", description="direct, through OBJECT, or possible (WHY).")
    reads: int = Field(ge=0, description="Statements that read it and succeeded.")
    failed: int = Field(ge=0, description="Statements that tried and failed (e.g. permission denied).")
    outside: int = Field(default=0, ge=0, description="Statements that read it while no path the role had was open "
                         "(the origins' intervals): not an exposure through that path, not counted in reads.")
    first_at: datetime | None = None
    last_at: datetime | None = None


class UnparsedStatement(Model):
    """A sealed statement the parser could not read: where its line lies in the log."""

    user: str
    at: datetime
    file: str
    offset: int
    error: str


class WhoSawWhat(Model):
    """Which login roles read which dataset tables, and how: the exposure as the database saw it."""

    entries: list[ObjectReads]
    users: list[str] = Field(description="Roles with at least one successful direct or through read.")
    possible_users: list[str] = Field(
        default_factory=list, description="Other roles with a successful statement that possibly read the data."
    )
    statements: int = Field(ge=0, description="Sealed statements analysed.")
    unparsed: int = Field(default=0, ge=0, description="Sealed statements the parser could not read.")
    over_budget: int = Field(default=0, ge=0, description="Of the unparsed, statements left unread once the budget "
                             "of distinct statements was spent.")
    unparsed_users: list[str] = Field(default_factory=list)
    unparsed_statements: list[UnparsedStatement] = Field(
        default_factory=list, description=f"The first {MAX_LISTED_UNPARSED}, by place in the log."
    )
    scope: ReadScope | None = Field(default=None, description="What names were resolved against.")

    def for_user(self, user: str) -> list[ObjectReads]:
        return [e for e in self.entries if e.user == user]


def describe(how: str, via: str | None) -> str:
    if how == "through":
        return f"through {via}"
    return "possible" + (f" ({via})" if via else "") if how == "possible" else "direct"


_Key = tuple[str, tuple[str, ...], str | None]
Covers = Callable[[str, str, str, str | None, datetime], bool]  # (user, table, how, via, at): an exposure?


def _key(sql: str, path: Sequence[str], user: str) -> _Key:
    """What an analysis depends on: the text, the search_path and, only when the path names it, the user."""
    return sql, tuple(path), user if "$user" in path else None


@dataclass
class _Statement:
    user: str
    at: datetime
    session: str
    line_num: int | None
    file: str
    offset: int
    sql: str
    path: tuple[str, ...]
    local: tuple[str, ...] | None  # a SET LOCAL search_path in force: its transaction may have ended
    result: StatementReads | None = None
    unlocal: StatementReads | None = None  # the same statement under the session's own path
    failed: bool | None = None  # None until the session's next line says


@dataclass
class _Slot:
    reads: int = 0
    failed: int = 0
    first: datetime | None = None
    last: datetime | None = None
    outside: int = 0


class HeldStatement(Model):
    """A statement analysed whose outcome the session's next line will tell."""

    session: str
    user: str
    at: datetime
    line_num: int | None
    file: str
    offset: int
    sql: str
    path: tuple[str, ...]
    local: tuple[str, ...] | None
    result: StatementReads
    unlocal: StatementReads | None


class BuilderProgress(Model):
    """What a builder knows between two batches, but its cache: enough to go on from there. It names
    people and statements, so it is kept in the evidence store, never in a workflow's history."""

    records: int = Field(ge=0, description="Records added so far, counted across the bundles in order.")
    statements: int = Field(ge=0)
    parsed_distinct: int = Field(ge=0)
    over_budget: int = Field(ge=0)
    slots: list[tuple[str, str, str, str | None, int, int, datetime | None, datetime | None, int]] = Field(
        description="(user, table, how, via, reads, failed, first, last, outside) of every path a role took.")
    unparsed: dict[str, int]
    unparsed_listed: list[UnparsedStatement]
    paths: dict[str, tuple[str, ...]]
    locals: dict[str, tuple[str, ...]]
    held: list[HeldStatement]


class WhoSawWhatBuilder:
    """Re-reads sealed ``pglog`` records in order (``add``), then ``finish``; memory grows with
    (role, table, path) triples, sessions and one batch, not with the log.

    ``budget`` bounds the work: once that many distinct statements were parsed, every statement not
    already understood is counted unparsed (over budget), by user and place, never guessed. ``progress``
    and ``resume`` carry the builder across a retry, so a retry continues where the last one stopped."""

    def __init__(self, scope: ReadScope, attribution: Attribution | None = None, *,
                 executor: Executor | None = None, batch: int = BATCH, budget: int | None = None,
                 covers: Covers | None = None) -> None:
        self.scope, self.who = scope, attribution or Attribution()
        self.covers = covers  # whether a read was through a path open then (``origins.Intervals.covers``)
        self.executor, self.batch_size, self.budget = executor, batch, budget
        self.statements = 0
        self.parsed_distinct = 0  # analyses run, across retries: what the budget counts
        self.over_budget = 0
        self._acc: dict[tuple[str, str, str, str | None], _Slot] = {}
        self._unparsed: dict[str, int] = {}
        self._unparsed_listed: list[UnparsedStatement] = []
        self._paths: dict[str, tuple[str, ...]] = {}  # session -> search_path set by SET
        self._locals: dict[str, tuple[str, ...]] = {}  # session -> SET LOCAL search_path
        self._open: dict[str, _Statement] = {}  # session -> its last statement, outcome not yet known
        self._batch: list[_Statement] = []
        self._cache: dict[_Key, StatementReads] = {}

    async def progress(self, records: int) -> BuilderProgress:
        """Where the builder stands after ``records`` records (the batch in hand is analysed first)."""
        await self._flush()
        return BuilderProgress(
            records=records, statements=self.statements, parsed_distinct=self.parsed_distinct,
            over_budget=self.over_budget,
            slots=[(*k, v.reads, v.failed, v.first, v.last, v.outside) for k, v in self._acc.items()],
            unparsed=dict(self._unparsed), unparsed_listed=list(self._unparsed_listed), paths=dict(self._paths),
            locals=dict(self._locals),
            held=[HeldStatement(session=session, user=st.user, at=st.at, line_num=st.line_num, file=st.file,
                                offset=st.offset, sql=st.sql, path=st.path, local=st.local, result=st.result,
                                unlocal=st.unlocal)
                  for session, st in self._open.items() if st.result is not None],
        )

    def resume(self, progress: BuilderProgress) -> None:
        """Go on from ``progress`` (a fresh builder over the same scope; the records it counted are skipped)."""
        self.statements, self.parsed_distinct = progress.statements, progress.parsed_distinct
        self.over_budget = progress.over_budget
        self._acc = {(user, obj, how, via): _Slot(reads, failed, first, last, outside)
                     for user, obj, how, via, reads, failed, first, last, outside in progress.slots}
        self._unparsed, self._unparsed_listed = dict(progress.unparsed), list(progress.unparsed_listed)
        self._paths, self._locals = dict(progress.paths), dict(progress.locals)
        self._open = {h.session: _Statement(user=h.user, at=h.at, session=h.session, line_num=h.line_num,
                                            file=h.file, offset=h.offset, sql=h.sql, path=h.path, local=h.local,
                                            result=h.result, unlocal=h.unlocal)
                      for h in progress.held}

    async def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            capped = capped_fields(record)
            if capped is not None:
                self._capped(capped, record)
                continue
            raw = original_line(record)
            entry = decode_entry(raw) if raw is not None else None
            if entry is None:
                continue  # not a log line: nothing of who saw what
            await self._line(entry, record)

    def _capped(self, entry: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """A line sealed capped (too long to read whole): a statement nobody could read, by its user."""
        session = str(entry.get("session_id", ""))
        held = self._open.pop(session, None)
        if held is not None:
            held.failed = False
            self._settle(held, session)
        user = str(entry.get("user") or "")
        self.statements += 1
        self._unparsed[user] = self._unparsed.get(user, 0) + 1
        if len(self._unparsed_listed) < MAX_LISTED_UNPARSED:
            self._unparsed_listed.append(UnparsedStatement(
                user=user, at=datetime.fromisoformat(str(record["at"])), file=str(record.get("file", "")),
                offset=int(record.get("offset", 0)),
                error=f"a line of {record['length']} bytes, over the reader's cap: sealed capped"))

    async def _line(self, entry: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        session = str(entry.get("session_id", ""))
        line_num = entry.get("line_num")
        error = entry.get("error_severity") in ERRORS
        held = self._open.pop(session, None)
        if held is not None:
            held.failed = error and isinstance(line_num, int) and held.line_num == line_num - 1
            self._settle(held, session)
        if error:
            return
        sql = statement_text(str(entry.get("message", "")))
        if sql is None:
            return
        user = str(entry.get("user") or "")
        try:
            at = parse_pg_time(str(entry["timestamp"]))
        except (KeyError, ValueError):
            return
        st = _Statement(user=user, at=at, session=session, line_num=line_num if isinstance(line_num, int) else None,
                        file=str(record.get("file", "")), offset=int(record.get("offset", 0)), sql=sql,
                        path=self._paths.get(session, DEFAULT_SEARCH_PATH), local=self._locals.get(session))
        self.statements += 1
        self._batch.append(st)
        self._open[session] = st
        # what a SET does to the session's path must be known before its next statement is read
        if len(self._batch) >= self.batch_size or may_set_path(sql):
            await self._flush()

    async def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        keys: list[_Key] = []
        for st in batch:
            keys.append(_key(st.sql, st.local or st.path, st.user))
            if st.local is not None:
                keys.append(_key(st.sql, st.path, st.user))
        # a log repeats its statements (an application's, a dashboard's): each distinct one is parsed once
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if len(self._cache) + len(missing) > CACHE_ENTRIES:
            self._cache.clear()
        allowed = len(missing) if self.budget is None else max(0, min(len(missing), self.budget - self.parsed_distinct))
        found = await analyse_each_off_loop(missing[:allowed], self.scope, executor=self.executor)
        self.parsed_distinct += allowed
        fresh = dict(zip(missing, [*found, *[OVER_BUDGET] * (len(missing) - allowed)], strict=True))
        self._cache.update((k, r) for k, r in fresh.items() if len(k[0]) <= CACHE_STATEMENT_CHARS)
        results = iter([fresh.get(k) or self._cache[k] for k in keys])
        for st in batch:
            st.result = next(results)
            st.unlocal = next(results) if st.local is not None else None
            if st.failed is not None:
                self._count(st)

    def _settle(self, st: _Statement, session: str) -> None:
        """The statement's outcome is known: its SET applies from now on (unless it failed)."""
        if st.result is None:
            return  # counted when its batch is analysed
        self._count(st)
        path = st.result.search_path
        if path is not None and not st.failed:
            if st.result.search_path_local:
                self._locals[session] = path
            else:
                self._paths[session] = path
                self._locals.pop(session, None)

    def _count(self, st: _Statement) -> None:
        assert st.result is not None
        if not st.result.parsed:
            self.over_budget += st.result.kind == OVER_BUDGET.kind
            self._unparsed[st.user] = self._unparsed.get(st.user, 0) + 1
            if len(self._unparsed_listed) < MAX_LISTED_UNPARSED:
                self._unparsed_listed.append(UnparsedStatement(
                    user=st.user, at=st.at, file=st.file, offset=st.offset, error=st.result.error or ""))
            return
        for read in _reads(st):
            slot = self._acc.setdefault((st.user, read.object, read.how, read.via), _Slot())
            if st.failed:
                slot.failed += 1
                continue
            if self.covers is not None and not self.covers(st.user, read.object, read.how, read.via, st.at):
                slot.outside += 1
                continue
            slot.reads += 1
            slot.first = st.at if slot.first is None or st.at < slot.first else slot.first
            slot.last = st.at if slot.last is None or st.at > slot.last else slot.last

    async def finish(self) -> WhoSawWhat:
        """The report, once every record was added (statements whose next line never came succeeded)."""
        for session, st in list(self._open.items()):
            st.failed = False
            self._settle(st, session)
        self._open.clear()
        await self._flush()
        entries = [
            ObjectReads(dataset=self.who.dataset(obj), user=user, object=obj, how=how, via=via,  # type: ignore[arg-type]
                        path=describe(how, via), reads=s.reads, failed=s.failed, outside=s.outside,
                        first_at=s.first, last_at=s.last)
            for (user, obj, how, via), s in sorted(self._acc.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                                                     kv[0][3] or ""))
        ]
        users = sorted({e.user for e in entries if e.reads and e.how != "possible"})
        possible = sorted({e.user for e in entries if e.reads} - set(users))
        return WhoSawWhat(
            entries=entries, users=users, possible_users=possible, statements=self.statements,
            unparsed=sum(self._unparsed.values()), over_budget=self.over_budget, unparsed_users=sorted(self._unparsed),
            unparsed_statements=self._unparsed_listed, scope=self.scope,
        )


def _reads(st: _Statement) -> list[Read]:
    """The statement's reads; under a SET LOCAL path, what holds only with or only without it is possible."""
    assert st.result is not None
    if st.unlocal is None or not st.unlocal.parsed:
        return list(st.result.reads)
    with_local, without = set(st.result.reads), set(st.unlocal.reads)
    both = with_local & without
    either = (with_local | without) - both
    return [*both, *(Read(object=r.object, how="possible", via=r.via or "SET LOCAL search_path") for r in either)]
