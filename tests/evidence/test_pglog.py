"""The database log as evidence: which jsonlog lines are sealed, that they are the server's own bytes,
and who saw what re-derived from them (no server: the log is written here, as PostgreSQL writes it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausegate.analysis.pglog_lines import original_line
from pausegate.analysis.statement_reads import Exposer, ReadScope, prefilter
from pausegate.analysis.who_saw_what import WhoSawWhat, WhoSawWhatBuilder
from pausegate.connectors.audit import pglog
from pausegate.connectors.audit.pglog import PostgresLogSource
from tests.support.work import lines_executed

from .conftest import T0

SCOPE = ReadScope.of(
    tables=["telemetry.keystrokes", "telemetry.mouse_events"],
    exposers={"analytics.recent_keystrokes": Exposer(kind="view", reaches=("telemetry.keystrokes",))},
)
WINDOW = (T0, T0 + timedelta(hours=1))


class Log:
    """A jsonlog file written line by line, with each session's line numbers kept."""

    def __init__(self, directory: Path, name: str = "postgresql-1.json") -> None:
        self.path = directory / name
        self.lines: list[bytes] = []
        self.numbers: dict[str, int] = {}
        self.second = 0

    def add(self, user: str, message: str, *, session: str = "s1", severity: str = "LOG", dbname: str = "hr",
            state: str = "00000", at: str | None = None) -> bytes:
        self.numbers[session] = self.numbers.get(session, 0) + 1
        self.second += 1
        stamp = at or (T0 + timedelta(seconds=self.second)).strftime("%Y-%m-%d %H:%M:%S.000 UTC")
        # ensure_ascii=False: PostgreSQL escapes quotes, backslashes and control characters, nothing else
        line = json.dumps({"timestamp": stamp, "user": user, "dbname": dbname, "pid": 7, "session_id": session,
                           "line_num": self.numbers[session], "error_severity": severity, "state_code": state,
                           "message": message, "application_name": "psql"},
                          ensure_ascii=False, separators=(",", ":")).encode()
        self.lines.append(line)
        return line

    def write(self, tail: bytes = b"") -> Path:
        self.path.write_bytes(b"".join(line + b"\n" for line in self.lines) + tail)
        return self.path


@pytest.fixture(params=[True, False], ids=["automaton", "find"])
def search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Both ways of searching the log must keep the same lines."""
    monkeypatch.setattr(pglog, "USE_AUTOMATON", request.param)
    yield request.param


async def sealed(directory: Path, scope: ReadScope | None = SCOPE, **kwargs: Any) -> list[dict[str, Any]]:
    source = PostgresLogSource(directory, scope=scope, **kwargs)
    return [dict(r) async for r in source.records(*WINDOW)]


def messages(records: list[dict[str, Any]]) -> list[str]:
    return [json.loads(original_line(r) or b"{}")["message"] for r in records]


async def who_saw_what(records: list[dict[str, Any]], scope: ReadScope = SCOPE) -> WhoSawWhat:
    builder = WhoSawWhatBuilder(scope)
    await builder.add(records)
    return await builder.finish()


class TestSealedLines:
    async def test_kept_lines_are_the_logs_own_bytes(self, tmp_path: Path, search: bool) -> None:
        log = Log(tmp_path)
        log.add("alice", "statement: SELECT * FROM telemetry.keystrokes WHERE note = 'naïve \"quoted\"\\\\'")
        log.add("bob", "statement: SELECT *\n\tFROM   analytics.recent_keystrokes")
        log.add("carol", "statement: SELECT * FROM shop.orders")
        log.add("dave", "execute <unnamed>: SELECT x FROM telemetry.mouse_events WHERE y = $1")
        log.add("erin", "statement: SELECT 1 FROM telemetry.keystrokes", dbname="other")
        path = log.write(tail=b'{"timestamp":"2026-11-29 06:40:00.000 UTC","message":"statement: SELECT * FROM tel')
        records = await sealed(tmp_path, database="hr")
        assert [r["offset"] for r in records] == [0, len(log.lines[0]) + 1, sum(len(x) + 1 for x in log.lines[:3])]
        data = path.read_bytes()
        for record in records:
            assert record["file"] == path.name
            start = record["offset"]
            assert original_line(record) == data[start:data.index(b"\n", start)]  # byte for byte
        assert [json.loads(original_line(r) or b"")["user"] for r in records] == ["alice", "bob", "dave"]
        assert records[0]["at"] == "2026-11-29T06:30:01+00:00"

    async def test_a_line_that_is_not_utf8_is_sealed_as_its_bytes(self, tmp_path: Path, search: bool) -> None:
        raw = (b'{"timestamp":"2026-11-29 06:30:01.000 UTC","user":"l1","dbname":"hr","session_id":"s","line_num":1,'
               b'"error_severity":"LOG","message":"statement: SELECT \'caf\xe9\' FROM telemetry.keystrokes"}')
        (tmp_path / "postgresql-1.json").write_bytes(raw + b"\n")
        (record,) = await sealed(tmp_path)
        assert "line" not in record and original_line(record) == raw

    async def test_the_error_that_follows_a_kept_statement_is_kept(self, tmp_path: Path, search: bool) -> None:
        log = Log(tmp_path)
        log.add("u1", "statement: SELECT * FROM telemetry.keystrokes", session="a")
        log.add("u2", "statement: SELECT 1/0", session="b")
        log.add("u1", "permission denied for table keystrokes", session="a", severity="ERROR", state="42501")
        log.add("u2", "division by zero", session="b", severity="ERROR", state="22012")  # not a kept statement's
        log.add("u1", "statement: SELECT 2", session="a")  # not kept: its error is not either
        log.add("u1", "division by zero", session="a", severity="ERROR", state="22012")
        log.write()
        records = await sealed(tmp_path)
        assert messages(records) == ["statement: SELECT * FROM telemetry.keystrokes",
                                     "permission denied for table keystrokes"]
        report = await who_saw_what(records)
        (entry,) = report.entries
        assert (entry.user, entry.reads, entry.failed, report.users) == ("u1", 0, 1, [])

    async def test_search_path_lines_are_kept_and_resolve_later_names(self, tmp_path: Path, search: bool) -> None:
        log = Log(tmp_path)
        log.add("u1", "statement: SET search_path TO analytics, public", session="a")
        log.add("u1", "statement: SELECT * FROM recent_keystrokes", session="a")
        log.add("u2", "statement: SELECT * FROM recent_keystrokes", session="b")  # its path does not have it
        log.add("u3", "statement: SET search_path = telemetry", session="c")
        log.add("u3", 'permission denied for schema telemetry', session="c", severity="ERROR", state="42501")
        log.add("u3", "statement: SELECT count(*) FROM keystrokes", session="c")  # the SET failed: public
        log.add("u4", "statement: SELECT set_config('search_path', 'telemetry', false)", session="d")
        log.add("u4", "statement: SELECT count(*) FROM mouse_events", session="d")
        log.write()
        report = await who_saw_what(await sealed(tmp_path))
        assert {(e.user, e.object, e.path) for e in report.entries} == {
            ("u1", "telemetry.keystrokes", "through analytics.recent_keystrokes"),
            ("u4", "telemetry.mouse_events", "direct"),
        }
        assert report.users == ["u1", "u4"]

    async def test_a_set_local_path_makes_its_reads_possible(self, tmp_path: Path, search: bool) -> None:
        log = Log(tmp_path)
        log.add("u1", "statement: BEGIN", session="a")
        log.add("u1", "statement: SET LOCAL search_path TO telemetry", session="a")
        log.add("u1", "statement: SELECT count(*) FROM keystrokes", session="a")
        log.write()
        report = await who_saw_what(await sealed(tmp_path))
        (entry,) = report.entries
        # the transaction may have ended (COMMIT is not sealed): the name may no longer resolve there
        assert (entry.user, entry.path, report.users, report.possible_users) == (
            "u1", "possible (SET LOCAL search_path)", [], ["u1"])

    async def test_whole_schema_sessions_are_followed(self, tmp_path: Path, search: bool) -> None:
        whole = ReadScope.of(whole_schemas=["telemetry"])
        log = Log(tmp_path)
        log.add("u1", "statement: SELECT * FROM telemetry.anything", session="a")
        log.add("u2", "statement: SET search_path TO telemetry", session="b")
        log.add("u2", "statement: SELECT * FROM sessions", session="b")  # holds no needle
        log.add("u3", "statement: SELECT * FROM sessions", session="c")
        log.write()
        records = await sealed(tmp_path, whole)
        assert [json.loads(original_line(r) or b"")["user"] for r in records] == ["u1", "u2", "u2"]
        report = await who_saw_what(records, whole)
        assert {(e.user, e.object) for e in report.entries} == {("u1", "telemetry.anything"),
                                                                ("u2", "telemetry.sessions")}

    async def test_without_scope_every_statement_is_kept(self, tmp_path: Path, search: bool) -> None:
        log = Log(tmp_path)
        log.add("u1", "statement: SELECT 1")
        log.add("u1", "execute S_1: SELECT 2")
        log.add("u1", "connection authorized: user=u1")
        log.write()
        assert messages(await sealed(tmp_path, None)) == ["statement: SELECT 1", "execute S_1: SELECT 2"]

    async def test_an_unparsable_statement_is_sealed_and_counted(self, tmp_path: Path, search: bool) -> None:
        log = Log(tmp_path)
        odd = "statement: SELECT * FROM telemetry.keystrokes WHERE x = 1 " + "+-" * 100 + " 1"
        log.add("mallory", odd)
        log.write()
        records = await sealed(tmp_path)
        assert messages(records) == [odd]
        report = await who_saw_what(records)
        assert (report.unparsed, report.unparsed_users, report.entries) == (1, ["mallory"], [])
        (listed,) = report.unparsed_statements
        assert (listed.file, listed.offset) == ("postgresql-1.json", 0) and "operator" in listed.error


# ---------------------------------------------------------------- never missing a line the prefilter passes

_PIECES = ["SELECT", "*", "FROM", "keystrokes", "telemetry.KEYSTROKES", 'U&"\\006beystrokes"', "recent_keystrokes",
           "query_to_xml(", "E'\\x6beystrokes'", "e'x'", "le'", "DO $$", "EXECUTE", "format(", "'it''s'", "\n", "\t",
           '"', "\\", "é", "ǅ", "\u212a", "--", "/*", "*/", ";", "mouse_events", "MOUSE\nEVENTS", "x", "=", "1"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map(" ".join), st.sampled_from(["statement: ",
                                                                                       "execute <unnamed>: "]))
def test_no_line_the_prefilter_passes_is_left_out(tmp_path_factory: pytest.TempPathFactory, statement: str,
                                                  prefix: str) -> None:
    directory = tmp_path_factory.mktemp("log")
    log = Log(directory)
    log.add("u", "statement: SELECT 1")  # neighbours: a hit must land on its own line
    log.add("u", prefix + statement)
    log.add("u", "statement: SELECT 2")
    log.write()
    for automaton in (True, False):
        pglog.USE_AUTOMATON = automaton
        try:
            import asyncio

            kept = messages(asyncio.run(sealed(directory)))
        finally:
            pglog.USE_AUTOMATON = True
        assert (prefix + statement in kept) >= prefilter(statement, SCOPE), (automaton, statement)
        assert "statement: SELECT 1" not in kept and "statement: SELECT 2" not in kept


# ---------------------------------------------------------------- bounded cost


PACKAGE = str(Path(pglog.__file__).resolve().parents[2])


def _steps(fn: Callable[[], object]) -> int:
    """Lines of pausegate's own code that ``fn`` executes, in every thread it starts."""
    return lines_executed(fn, lambda name: name.startswith(PACKAGE), threads=True)


def test_comment_floods_cost_what_their_size_costs(tmp_path: Path) -> None:
    """The old classifier backtracked exponentially on dozens of "/**/" before a parenthesis; the
    log reader and who-saw-what are linear in them."""
    import asyncio

    def run(n: int) -> Callable[[], object]:
        directory = tmp_path / f"n{n}"
        directory.mkdir()
        log = Log(directory)
        for _ in range(20):
            log.add("mallory", "statement: " + "/**/" * n + "(SELECT * FROM telemetry.keystrokes)")
        log.write()

        async def both() -> WhoSawWhat:
            return await who_saw_what(await sealed(directory))

        return lambda: asyncio.run(both())

    small, large = run(1000), run(4000)
    report = asyncio.run(who_saw_what(asyncio.run(sealed(tmp_path / "n4000"))))
    assert [(e.user, e.reads) for e in report.entries] == [("mallory", 20)]
    # four times the text: at most four times the work (a quadratic cost would be sixteen)
    assert _steps(large) <= 4.4 * _steps(small)
