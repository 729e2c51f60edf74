"""When each path opened, on a real PostgreSQL that logs every statement: a grant to a group by a
migration, a view made and granted to everyone by a dashboard author, a path revoked and granted again,
a path older than the log, a statement too large to parse; and who saw what against those intervals."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from activities.origins import needle_scope, same_named
from pausegate.analysis.exposure import build_who_saw_what
from pausegate.analysis.origins import Intervals, OriginFinder
from pausegate.analysis.origins_paths import scope_paths
from pausegate.analysis.who_saw_what import DatasetPaths, WhoSawWhat, read_scope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.postgres.catalog import load_state
from pausegate.connectors.postgres.scope import scope_model
from pausegate.models.access import ExposureScope
from pausegate.models.origins import OriginDocument, PathOrigin
from pausegate.models.runbook import DatasetSpec
from tests.support.fault_report import record_result

ROLES = ("owner", "migrator", "dash", "staff", "alice", "bob", "legacy", "contractors")
PADDING = "x" * (300 * 1024)  # over the parser's bound: the statement is kept and counted, not read


def _dsn(dsn: str, database: str, user: str | None = None) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    netloc = parts.netloc.split("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:@{netloc}" if user else parts.netloc, path=f"/{database}"))


@dataclass
class Leak:
    """A database whose keystrokes became readable step by step, each step by a named role."""

    dsn: str
    log_dir: Path
    database: str
    prefix: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    marks: dict[str, datetime] = field(default_factory=dict)

    def role(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fill(self, text: str) -> str:
        return text.format(**{n: self.role(n) for n in ROLES})

    def run(self, who: str | None, *statements: str, fails: bool = False) -> None:
        """Each statement as ``who`` (None: the superuser), in one session; ``fails``: the server refuses it."""
        with psycopg.connect(_dsn(self.dsn, self.database, self.role(who) if who else None),
                             autocommit=True) as conn:
            for statement in statements:
                try:
                    cur = conn.execute(self.fill(statement))  # type: ignore[call-overload]
                    if cur.description is not None:
                        cur.fetchall()
                except psycopg.errors.InsufficientPrivilege:
                    assert fails, statement
                else:
                    assert not fails, statement
        self._next_millisecond()

    def mark(self, name: str) -> None:
        with psycopg.connect(_dsn(self.dsn, self.database), autocommit=True) as conn:
            row = conn.execute("SELECT date_trunc('milliseconds', clock_timestamp())").fetchone()
        assert row is not None
        self.marks[name] = row[0]
        self._next_millisecond()

    def _next_millisecond(self) -> None:
        """The log stamps lines to the millisecond: wait (bounded) until the server's clock is past this one,
        so that the next step is logged strictly later."""
        with psycopg.connect(_dsn(self.dsn, self.database), autocommit=True) as conn:
            first = conn.execute("SELECT date_trunc('milliseconds', clock_timestamp())").fetchone()
            for _ in range(10_000):
                now = conn.execute("SELECT date_trunc('milliseconds', clock_timestamp())").fetchone()
                if now is not None and first is not None and now[0] > first[0]:
                    return
            raise AssertionError("the server's clock did not move")

    def spec(self) -> DatasetSpec:
        return DatasetSpec(name="keystrokes", connection="db", schema="data", tables=["keystrokes"])

    async def scope(self) -> ExposureScope:
        async with await psycopg.AsyncConnection.connect(_dsn(self.dsn, self.database), autocommit=True) as conn:
            return scope_model(self.spec(), await load_state(conn, self.spec()))

    async def records(self, source: PostgresLogSource) -> list[dict[str, Any]]:
        async def fence(marker: str) -> None:
            async with await psycopg.AsyncConnection.connect(_dsn(self.dsn, self.database),
                                                             autocommit=True) as conn:
                await conn.execute(sql.SQL("SELECT {}").format(sql.Literal(marker)))

        end = datetime.now(UTC) + timedelta(minutes=1)
        return [dict(r) async for r in source.fenced(fence).records(self.started, end)]

    async def origins(self) -> tuple[OriginDocument, ExposureScope]:
        """The origins as the activity derives them: the scope's paths, the catalog's same-named relations,
        the log read again for the lines naming a path."""
        scope = await self.scope()
        paths = scope_paths([scope])
        async with await psycopg.AsyncConnection.connect(_dsn(self.dsn, self.database), autocommit=True) as conn:
            paths.shadows |= await same_named(conn, paths)
        records = await self.records(PostgresLogSource(self.log_dir, database=self.database).scoped(
            needle_scope(paths)))
        finder = OriginFinder(paths, recorded_at=scope.recorded_at)
        finder.add(records, "bundle")
        document = finder.finish(window_start=self.started, window_end=datetime.now(UTC), oldest_line=self.started)
        return document, scope

    async def who_saw_what(self, scope: ExposureScope, document: OriginDocument | None) -> WhoSawWhat:
        spec = self.spec()
        read, who = read_scope([DatasetPaths(name=spec.name, schema="data", tables=("keystrokes",),
                                             recorded=scope)])
        records = await self.records(PostgresLogSource(self.log_dir, database=self.database).scoped(read))
        covers = Intervals(document).covers if document is not None else None
        return await build_who_saw_what(read, who, [iter(records)], covers=covers)


@pytest.fixture
def leak(postgres: tuple[str, Path]) -> Iterator[Leak]:
    dsn, log_dir = postgres
    world = Leak(dsn=dsn, log_dir=log_dir, database=f"o_{secrets.token_hex(4)}", prefix=f"o{secrets.token_hex(3)}_")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(world.database)))
    world.run(None,
              "CREATE ROLE {owner}", "CREATE ROLE {staff}", "CREATE ROLE {contractors}",
              "CREATE ROLE {migrator} LOGIN", "CREATE ROLE {dash} LOGIN IN ROLE {staff}",
              "CREATE ROLE {alice} LOGIN IN ROLE {staff}", "CREATE ROLE {bob} LOGIN", "CREATE ROLE {legacy} LOGIN",
              "CREATE SCHEMA data AUTHORIZATION {owner}", "CREATE SCHEMA analytics", "CREATE SCHEMA sandbox",
              "GRANT USAGE ON SCHEMA data, analytics, sandbox TO PUBLIC", "GRANT CREATE ON SCHEMA analytics TO {dash}",
              "CREATE TABLE data.keystrokes (id int PRIMARY KEY, employee text NOT NULL, typed text)",
              "INSERT INTO data.keystrokes SELECT g, 'employee-' || (g % 7), md5(g::text) "
              "FROM generate_series(1, 50) g",
              "ALTER TABLE data.keystrokes OWNER TO {owner}",
              "CREATE TABLE sandbox.keystrokes (id int)",  # named like the dataset's table, in another schema
              "ALTER TABLE sandbox.keystrokes OWNER TO {migrator}",
              "GRANT SELECT ON data.keystrokes TO {migrator} WITH GRANT OPTION",
              "GRANT SELECT ON data.keystrokes TO {legacy}")  # older than the log read: "open before"
    world.mark("start")
    world.started = world.marks["start"]
    yield world
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(world.database)))
        for name in ROLES:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(world.role(name))))


def _path(document: OriginDocument, path_id: str) -> PathOrigin:
    found = [p for p in document.paths if p.id == path_id]
    assert len(found) == 1, [p.id for p in document.paths]
    return found[0]


def _reads(report: WhoSawWhat, user: str, via: str | None) -> tuple[int, int, int]:
    entries = [e for e in report.entries if e.user == user and e.via == via and e.object == "data.keystrokes"]
    return sum(e.reads for e in entries), sum(e.outside for e in entries), sum(e.failed for e in entries)


def _the_leak(w: Leak) -> None:
    # a statement named as the scope's table, but the search_path puts another schema's table first
    w.run("migrator", "SET search_path = sandbox, data", "GRANT SELECT ON keystrokes TO {staff}")
    w.mark("decoy")
    # T1: the migration; its comment claims the opposite of what it does
    w.run("migrator", "/* migration 0042: REVOKE ALL ON data.keystrokes FROM {staff} (tightening) */ "
          "SET search_path = data; GRANT SELECT ON keystrokes TO {staff}")
    w.mark("t1")
    w.run("dash", "CREATE VIEW analytics.recent AS SELECT employee, typed FROM data.keystrokes",
          "SELECT count(*) FROM analytics.recent")  # the author tries it before anyone else may
    w.run("bob", "SELECT count(*) FROM analytics.recent", fails=True)
    w.mark("before_t2")
    # T2: the view opened to everyone by its author
    w.run("dash", "GRANT SELECT ON analytics.recent TO PUBLIC")
    w.mark("t2")
    w.run("bob", "SELECT count(*) FROM analytics.recent")
    w.run("dash", "SELECT count(*) FROM analytics.recent")
    w.run("alice", "SELECT count(*) FROM data.keystrokes")
    # closed and opened again: the second time with the names spelled in Unicode escapes
    w.run("migrator", "REVOKE SELECT ON data.keystrokes FROM {staff}")
    w.mark("t3")
    w.run("alice", "SELECT count(*) FROM data.keystrokes", fails=True)
    escaped = w.role("staff").replace("s", "\\0073")
    w.run("migrator", 'GRANT SELECT ON U&"data".U&"\\006Beystrokes" TO U&"' + escaped + '"')
    w.mark("t4")
    w.run("alice", "SELECT count(*) FROM data.keystrokes")
    # a statement too large for the parser: kept, counted; its path of unknown origin
    w.run("migrator", "GRANT SELECT ON data.keystrokes TO {contractors} /* " + PADDING + " */")


class TestWhenEachPathOpened:
    async def test_each_path_opening_actor_and_statement(self, leak: Leak) -> None:
        """The group grant at T1 by the migration and the view's grant to everyone at T2 by its author: each
        path's opening, who ran it and the statement as logged; the decoy and the comment mislead nothing."""
        _the_leak(leak)
        document, _scope = await leak.origins()
        m = leak.marks
        staff = _path(document, f"grant:data.keystrokes:{leak.role('staff')}")
        assert staff.origin == "logged" and staff.company_wide
        first = staff.intervals[0]
        assert first.opened_at is not None and m["decoy"] < first.opened_at < m["t1"]
        assert first.opened_by is not None and first.opened_by.user == leak.role("migrator")
        assert "migration 0042" in first.opened_by.statement  # shown as text, not believed
        assert first.opened_by.line_sha256 and first.opened_by.file
        view_grant = _path(document, "grant:analytics.recent:PUBLIC")
        assert view_grant.origin == "logged" and view_grant.company_wide
        opened = view_grant.intervals[0]
        assert opened.opened_at is not None and m["before_t2"] < opened.opened_at < m["t2"]
        assert opened.opened_by is not None and opened.opened_by.user == leak.role("dash")
        assert opened.opened_by.statement == "GRANT SELECT ON analytics.recent TO PUBLIC"
        view = _path(document, f"view:analytics.recent:{leak.role('dash')}")
        assert view.intervals[0].opened_at is not None and view.intervals[0].opened_at < m["before_t2"]
        # the earliest company-wide opening, said as one sentence
        assert document.headline is not None and document.headline.since == first.opened_at
        assert document.headline.by == leak.role("migrator")
        assert document.headline.path == staff.id
        assert leak.role("staff") in document.headline.sentence()
        record_result("insider statements in the log", "a grant whose comment claims a revoke, behind a search_path "
                      "that puts a same-named table first", injected=2,
                      outcome="the decoy opened nothing; the grant dated by its own statement and role")

    async def test_revoked_and_granted_again_gives_two_intervals(self, leak: Leak) -> None:
        """Closed at T3, opened again at T4 by a statement spelling the names in Unicode escapes."""
        _the_leak(leak)
        document, _ = await leak.origins()
        m = leak.marks
        staff = _path(document, f"grant:data.keystrokes:{leak.role('staff')}")
        assert len(staff.intervals) == 2
        first, second = staff.intervals
        assert first.closed_at is not None and m["t2"] < first.closed_at < m["t3"]
        assert first.closed_by is not None and first.closed_by.statement.startswith("REVOKE")
        assert second.opened_at is not None and m["t3"] < second.opened_at < m["t4"]
        assert second.opened_by is not None and 'U&"data"' in second.opened_by.statement
        assert second.closed_at is None
        record_result("insider statements in the log", "a grant spelling table and role in U& escapes", injected=1,
                      outcome="decoded by the parser and attributed to the path it reopened")

    async def test_a_path_older_than_the_log_is_open_before_its_oldest_line(self, leak: Leak) -> None:
        _the_leak(leak)
        document, _ = await leak.origins()
        legacy = _path(document, f"grant:data.keystrokes:{leak.role('legacy')}")
        assert legacy.origin == "before_log"
        assert [(i.opened_at, i.opened_by) for i in legacy.intervals] == [(None, None)]
        assert document.oldest_line == leak.started

    async def test_an_unparseable_statement_is_counted_and_its_path_of_unknown_origin(self, leak: Leak) -> None:
        _the_leak(leak)
        document, _ = await leak.origins()
        assert document.unparsed == 1
        [unread] = document.unparsed_statements
        assert unread.user == leak.role("migrator") and "bytes" in unread.error
        contractors = _path(document, f"grant:data.keystrokes:{leak.role('contractors')}")
        assert contractors.origin == "unknown" and contractors.suspects == 1
        assert contractors.intervals[0].opened_at is None
        record_result("insider statements in the log", "a grant padded past the parser's bound", injected=1,
                      outcome="kept and counted unparsed; its path reported of unknown origin, not guessed")


class TestWhoSawWhatByInterval:
    async def test_a_read_through_the_view_before_it_opened_is_not_exposure_through_it(self, leak: Leak) -> None:
        """The author's read through the view before T2 is outside its path; bob's and the author's after
        T2 count; alice's reads count while the group grant was open, her refused one is failed."""
        _the_leak(leak)
        document, scope = await leak.origins()
        report = await leak.who_saw_what(scope, document)
        via = "analytics.recent"
        assert _reads(report, leak.role("dash"), via) == (1, 1, 0)
        assert _reads(report, leak.role("bob"), via) == (1, 0, 1)  # refused before T2, read after
        assert _reads(report, leak.role("alice"), None) == (2, 0, 1)
        assert leak.role("bob") in report.users
        # the look-back alone counted the author's early read as an exposure through the view
        unbounded = await leak.who_saw_what(scope, None)
        assert _reads(unbounded, leak.role("dash"), via) == (2, 0, 0)
