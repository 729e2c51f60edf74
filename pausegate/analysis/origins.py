"""When each access path of the exposure opened and closed, read from PostgreSQL's own statement log.

``OriginFinder`` re-reads sealed ``pglog`` records in order, as the server saw them: each message is
split into its statements by PostgreSQL's own parser (``copies_sql.parsed``, bounded like
``statement_reads``), and each statement's effect on the scope's paths (``origins_paths``) applies
once its outcome is known: the session's next line is not its ERROR, and its transaction committed.
Statements are insiders' text: what a comment says is never read, names are resolved as the server
resolves them (search_path, ``SET ROLE``, ``U&`` escapes decoded by the parser). A statement the parser
cannot read is counted and listed by place; a path that such a statement, or dynamic SQL (a DO block,
a routine's body), names and whose opening the log does not show is of *unknown* origin, never
guessed. A path with no opening in the log and nothing suspect is *open before* the oldest line read.

``Intervals`` answers who-saw-what's question for one read: was a path the reader had open then?
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pausegate.analysis.copies_sql import parsed
from pausegate.analysis.origins_paths import PUBLIC, Effect, Paths, Resolver, ScopePath, Session
from pausegate.analysis.pglog_lines import ERRORS, decode_entry, original_line, parse_pg_time, statement_text
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.models.evidence import EvidenceRef
from pausegate.models.origins import (
    MAX_STATEMENT_CHARS,
    Headline,
    Interval,
    LoggedStatement,
    OriginDocument,
    PathOrigin,
    UnreadStatement,
)

MAX_LISTED_UNPARSED = 1000
MAX_SUSPECTS = 10_000  # suspect statements remembered by the names they hold; past it, every name is suspect
PARSE_CACHE_ENTRIES = 4096
_DYNAMIC = frozenset({"DoStmt", "CreateFunctionStmt", "CallStmt", "ExecuteStmt", "PrepareStmt"})
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_$")
_BREAKS = str.maketrans({chr(c): " " for c in range(128) if chr(c) not in _IDENT})
_ACTS = ("grant", "revoke", "create", "alter", "drop", "policy", "owner", "execute", "do", "call")
# a query may hand such a statement to a routine as text (SELECT admin.run('GRANT ...')): as suspect as a DO block
_QUERIES = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
_CHANGES = ("grant ", "revoke ", "alter ", "owner ", "policy ")


@dataclass
class _Held:
    """A statement whose outcome its session's next line will tell."""

    line_num: int | None
    effects: list[tuple[Effect, LoggedStatement]]


@dataclass
class _Session(Session):
    tx_failed: bool = False
    tx_effects: list[tuple[Effect, LoggedStatement]] = field(default_factory=list)


def _words(text: str) -> set[str]:
    return set(text.casefold().translate(_BREAKS).split())


class OriginFinder:
    """Openings and closings of the scope's paths over sealed ``pglog`` records (``add``), then ``finish``."""

    def __init__(self, paths: Paths, *, recorded_at: datetime | None = None) -> None:
        self.paths = paths
        self.resolver = Resolver(paths)
        self.recorded_at = recorded_at
        self._names = {n.casefold() for n in paths.names}
        self._events: dict[str, list[tuple[bool, LoggedStatement]]] = {}
        self._sessions: dict[str, _Session] = {}
        self._held: dict[str, _Held] = {}
        self._suspect: list[frozenset[str]] = []  # the path names each suspect statement holds
        self._suspect_overflow = 0
        self._parsed: dict[str, tuple[list[tuple[str, dict[str, Any], str]], str | None]] = {}
        self.statements = 0
        self.unparsed = 0
        self.unparsed_listed: list[UnreadStatement] = []
        self.first_at: datetime | None = None

    # ---------------------------------------------------------- input

    def add(self, records: Iterable[Mapping[str, Any]], bundle: str | None = None) -> None:
        for record in records:
            raw = original_line(record)
            entry = decode_entry(raw) if raw is not None else None
            if entry is None or raw is None:
                if "sha256" in record:  # a line sealed capped: a statement nobody could read
                    self._unread(str(record.get("at", "")), "", record, "a line over the reader's cap")
                continue
            self._entry(entry, record, raw, bundle)

    def _entry(self, entry: Mapping[str, Any], record: Mapping[str, Any], raw: bytes, bundle: str | None) -> None:
        session_id = str(entry.get("session_id", ""))
        line_num = entry.get("line_num")
        line_num = line_num if isinstance(line_num, int) else None
        error = entry.get("error_severity") in ERRORS
        session = self._sessions.setdefault(session_id, _Session())
        held = self._held.pop(session_id, None)
        if held is not None:
            failed = error and held.line_num is not None and line_num == held.line_num + 1
            self._settle(session, held.effects, failed)
        if error:
            session.tx_failed = session.tx_failed or session.in_tx
            return
        sql = statement_text(str(entry.get("message", "")))
        if sql is None:
            return
        try:
            at = parse_pg_time(str(entry["timestamp"]))
        except (KeyError, ValueError):
            return
        self.statements += 1
        self.first_at = at if self.first_at is None or at < self.first_at else self.first_at
        user = str(entry.get("user") or "")
        if not self._names.intersection(_words(sql)) and "u&" not in sql.casefold() and not any(
                w in sql.casefold() for w in ("search_path", "role", "begin", "commit", "rollback", "start", "end",
                                              "abort", "reset")):
            return  # names no path and changes nothing of the session: cannot open one
        pieces, why = self._parse(sql)
        if why is not None:
            self.unparsed += 1
            self._unread(str(record.get("at", "")), user, record, why)
            self._suspects(sql)
            return
        app, client = entry.get("application_name"), entry.get("remote_host")
        logged = LoggedStatement(
            at=at, user=user, role=session.role or user, client=client if isinstance(client, str) and client else None,
            application=app if isinstance(app, str) and app else None, session=session_id, bundle=bundle,
            file=str(record.get("file", "")), offset=int(record.get("offset", 0)),
            line_sha256=hashlib.sha256(raw).hexdigest(), statement=sql[:MAX_STATEMENT_CHARS])
        effects: list[tuple[Effect, LoggedStatement]] = []
        for tag, body, text in pieces:
            if tag == "TransactionStmt":
                effects += self._transaction(session, str(body.get("kind", "")))
                continue
            folded = text.casefold()
            if (tag in _DYNAMIC and any(a in folded for a in _ACTS)) or (
                    tag in _QUERIES and any(a in folded for a in _CHANGES)):
                self._suspects(text)
            role = session.role or user
            # the role a statement runs as is the one in force before it: SET ROLE applies afterwards
            statement = logged if role == logged.role else logged.model_copy(update={"role": role})
            done = [(e, statement) for e in self.resolver.effects(tag, body, session, user)]
            # inside a transaction, an effect waits for its COMMIT (a failure in it, or ROLLBACK, drops it)
            (session.tx_effects if session.in_tx else effects).extend(done)
        self._held[session_id] = _Held(line_num, effects)

    def _parse(self, sql: str) -> tuple[list[tuple[str, dict[str, Any], str]], str | None]:
        done = self._parsed.get(sql)
        if done is None:
            if len(self._parsed) >= PARSE_CACHE_ENTRIES:
                self._parsed.clear()
            done = self._parsed[sql] = parsed(sql)
        return done

    def _unread(self, at: str, user: str, record: Mapping[str, Any], why: str) -> None:
        if len(self.unparsed_listed) < MAX_LISTED_UNPARSED:
            try:
                when = datetime.fromisoformat(at)
            except ValueError:
                return
            self.unparsed_listed.append(UnreadStatement(at=when, user=user, file=str(record.get("file", "")),
                                                        offset=int(record.get("offset", 0)), error=why[:500]))

    def _suspects(self, text: str) -> None:
        named = frozenset(self._names.intersection(_words(text)))
        if not named:
            return
        if len(self._suspect) < MAX_SUSPECTS:
            self._suspect.append(named)
        else:
            self._suspect_overflow += 1

    def _suspected(self, path: ScopePath) -> int:
        """Suspect statements naming both ends of the path (its object and its role)."""
        wanted = {path.object.rpartition(".")[2].casefold(), path.role.casefold()}
        if path.kind in ("view", "matview", "function", "rls_off", "owner") or path.role == PUBLIC:
            wanted = {path.object.rpartition(".")[2].casefold()}
        return self._suspect_overflow + sum(wanted <= named for named in self._suspect)

    def _settle(self, session: _Session, effects: list[tuple[Effect, LoggedStatement]], failed: bool) -> None:
        """A message's outcome is known: what it did counts unless it failed (inside a transaction, the
        failure aborts the transaction, so its COMMIT does nothing)."""
        if failed:
            session.tx_failed = session.tx_failed or session.in_tx
            return
        self._apply(effects)

    @staticmethod
    def _transaction(session: _Session, kind: str) -> list[tuple[Effect, LoggedStatement]]:
        """Transaction control: what a COMMIT makes count (with the message holding it)."""
        done: list[tuple[Effect, LoggedStatement]] = []
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            session.in_tx, session.tx_failed, session.tx_effects = True, False, []
        elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK") and session.in_tx:
            if kind == "TRANS_STMT_COMMIT" and not session.tx_failed:
                done = session.tx_effects
            session.in_tx, session.tx_failed, session.tx_effects = False, False, []
        return done

    def _apply(self, effects: Iterable[tuple[Effect, LoggedStatement]]) -> None:
        for effect, statement in effects:
            if effect.path not in self.paths.paths:
                kind, _, rest = effect.path.partition(":")
                obj = rest.rpartition(":")[0]
                if kind != "rls_off" or obj not in self.paths.owners:
                    continue  # not a path of the scope
                self.paths.add(ScopePath("rls_off", obj, rest.rpartition(":")[2]))
            self._events.setdefault(effect.path, []).append((effect.opens, statement))

    # ---------------------------------------------------------- output

    def finish(self, *, window_start: datetime, window_end: datetime, oldest_line: datetime | None = None,
               until: datetime | None = None) -> OriginDocument:
        """Each path's intervals; statements whose next line never came succeeded."""
        for session_id, held in list(self._held.items()):
            self._settle(self._sessions[session_id], held.effects, False)
        self._held.clear()
        for session in self._sessions.values():
            # a transaction whose end the lines read do not show: what it did counts (never shortening the
            # exposure); transaction control is only read where a line names a path
            if session.in_tx and not session.tx_failed:
                self._apply(session.tx_effects)
            session.in_tx, session.tx_effects = False, []
        oldest = oldest_line or self.first_at or window_start
        origins = [self._origin(p) for p in sorted(self.paths.paths.values(), key=lambda p: p.id)]
        last = None
        exposing = {p.id for p in self.paths.paths.values() if self.paths.exposing(p)}
        for o in origins:
            for i in o.intervals if o.id in exposing else ():
                end = i.closed_at or window_end
                last = end if last is None or end > last else last
        headline = _headline(origins, oldest, until or last or window_end)
        return OriginDocument(window_start=window_start, window_end=window_end, oldest_line=oldest,
                              statements=self.statements, unparsed=self.unparsed,
                              unparsed_statements=self.unparsed_listed, paths=origins, headline=headline, until=last)

    def _origin(self, path: ScopePath) -> PathOrigin:
        # in time order: a transaction's effects are applied when it ends, after later statements of others
        events = sorted(self._events.get(path.id, []), key=lambda e: e[1].at)
        intervals: list[Interval] = []
        is_open: bool | None = None
        for opens, statement in events:
            if opens and not is_open:
                intervals.append(Interval(opened_at=statement.at, opened_by=statement))
            elif not opens and is_open is not False:
                if is_open is None:  # closed before it was seen opening: it was open before the log
                    intervals.append(Interval())
                intervals[-1] = intervals[-1].model_copy(update={"closed_at": statement.at, "closed_by": statement})
            is_open = opens
        suspects = self._suspected(path)
        reopened_unseen = (self.recorded_at is not None and is_open is not None
                           and not _open_at(intervals, self.recorded_at))
        if reopened_unseen and self.recorded_at is not None:
            intervals = _open_unseen(intervals, self.recorded_at)
        if not events:
            intervals = [Interval()]
        first_logged = intervals[0].opened_at is not None
        origin = "logged" if first_logged and not reopened_unseen else "unknown" if suspects or reopened_unseen \
            else "before_log"
        return PathOrigin(id=path.id, kind=path.kind, object=path.object, role=path.role, via=path.via,
                          company_wide=self.paths.company_wide(path), origin=origin,  # type: ignore[arg-type]
                          intervals=intervals, suspects=suspects)


def _open_at(intervals: list[Interval], at: datetime) -> bool:
    return any((i.opened_at is None or i.opened_at <= at) and (i.closed_at is None or at < i.closed_at)
               for i in intervals)


def _open_unseen(intervals: list[Interval], recorded_at: datetime) -> list[Interval]:
    """The scope found the path open at ``recorded_at`` where the log has it closed: a REVOKE that revoked
    nothing (another grantor's grant of the same privilege stays) or a reopening the lines read do not show.
    When it was open again cannot be told, so it counts as open from the log's last closing before then (or
    from before the log) up to the next logged opening: a read in that stretch is exposure, never outside."""
    split = next((n for n, i in enumerate(intervals) if i.opened_at is not None and i.opened_at > recorded_at),
                 len(intervals))  # intervals are in time order
    earlier, later = intervals[:split], intervals[split:]
    closes = [i.closed_at for i in earlier if i.closed_at is not None]
    unseen = Interval(opened_at=max(closes) if closes else None, closed_at=later[0].opened_at if later else None)
    return [*earlier, unseen, *later]


def _headline(origins: list[PathOrigin], oldest: datetime, until: datetime) -> Headline | None:
    wide = [(i.opened_at, o, i) for o in origins if o.company_wide for i in o.intervals[:1]]
    if not wide:
        return None
    since, path, first = min(wide, key=lambda w: (w[0] is not None, w[0] or oldest, w[1].id))
    start = since or oldest
    statement = first.opened_by
    return Headline(since=since, before=oldest if since is None else None,
                    by=statement.user if statement else None, role=statement.role if statement else None,
                    through=path.describe(), statement=statement.statement if statement else None, path=path.id,
                    until=until, duration_seconds=max(0.0, (until - start).total_seconds()))


# ---------------------------------------------------------------- reads against the intervals

_Span = tuple[datetime | None, datetime | None]


def _spans(intervals: Iterable[Interval]) -> list[_Span]:
    return [(i.opened_at, i.closed_at) for i in intervals]


def _within(spans: Iterable[_Span], at: datetime) -> bool:
    return any((a is None or a <= at) and (b is None or at < b) for a, b in spans)


def _intersect(left: list[_Span], right: list[_Span]) -> list[_Span]:
    out: list[_Span] = []
    for a1, b1 in left:
        for a2, b2 in right:
            a = a2 if a1 is None else a1 if a2 is None else max(a1, a2)
            b = b2 if b1 is None else b1 if b2 is None else min(b1, b2)
            if a is None or b is None or a < b:
                out.append((a, b))
    return out


class Intervals:
    """Whether a read went through a path that was open when it happened (``covers``). A read no
    recorded path explains (a superuser's, say) is counted: what cannot be decided counts as exposure."""

    def __init__(self, document: OriginDocument) -> None:
        self.grants: dict[str, list[tuple[str, list[_Span]]]] = {}
        self.exist: dict[str, list[_Span]] = {}
        self.owners: dict[str, str] = {}
        self.members: dict[tuple[str, str], list[_Span]] = {}
        self.groups: dict[str, set[str]] = {}
        for p in document.paths:
            spans = _spans(p.intervals)
            if p.kind == "grant":
                self.grants.setdefault(p.object, []).append((p.role, spans))
            elif p.kind in ("view", "matview", "function"):
                self.exist[p.object] = spans
                self.owners[p.object] = p.role
            elif p.kind == "owner":
                self.owners[p.object] = p.role
            elif p.kind == "membership":
                self.members[(p.object, p.role)] = spans
                self.groups.setdefault(p.role, set()).add(p.object)

    def _all_groups(self, user: str) -> set[str]:
        out, todo = set[str](), [user]
        while todo:
            for g in self.groups.get(todo.pop(), ()):
                if g not in out:
                    out.add(g)
                    todo.append(g)
        return out

    def _granted(self, user: str, obj: str) -> list[_Span] | None:
        """When ``user`` held a grant on ``obj`` (its own, PUBLIC's, or a group's while a member); None: no
        recorded grant reaches it."""
        groups = self._all_groups(user)
        spans: list[_Span] = []
        found = False
        for role, granted in self.grants.get(obj, ()):
            if role in (PUBLIC, user):
                spans += granted
            elif role in groups:
                direct = self.members.get((role, user))
                spans += _intersect(granted, direct) if direct is not None else granted
            else:
                continue
            found = True
        return spans if found else None

    def _direct(self, user: str, obj: str, at: datetime) -> bool:
        if self.owners.get(obj) == user:
            return True
        spans = self._granted(user, obj)
        return spans is None or _within(spans, at)

    def covers(self, user: str, obj: str, how: str, via: str | None, at: datetime) -> bool:
        """Whether the read of ``obj`` by ``user`` at ``at`` (``how``, ``via``) was through an open path."""
        if how == "possible":
            return True
        if how == "through" and via is not None and via in self.exist:
            if not _within(self.exist[via], at):
                return False
            # its owner too reads through it only once it is opened to others: before, the owner's reads
            # are not an exposure through the view
            spans = self._granted(user, via)
            return spans is None or _within(spans, at)
        return self._direct(user, obj, at)


async def recorded_intervals(store: EvidenceStore, ref: EvidenceRef) -> tuple[Intervals, datetime | None]:
    """The intervals of the origin document the pause recorded (exactly that one), and the last moment a
    path was open (data subjects are counted up to it)."""
    document = OriginDocument.model_validate(await read_recorded(store, ref))
    return Intervals(document), document.until
