"""The statement analyser: what a logged statement reads, found with PostgreSQL's parser (no server)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pausegate.analysis.statement_reads import (
    DEFAULT_SEARCH_PATH,
    MAX_STATEMENT_BYTES,
    Exposer,
    Read,
    ReadScope,
    analyse,
    analyse_off_loop,
    needles,
    parser_text,
    prefilter,
    statement_kind,
)
from tests.support.work import lines_executed

EVENTS = "telemetry.key_events"
SCOPE = ReadScope.of(
    tables=[EVENTS, "telemetry.KeyEvents"],
    exposers={
        "reporting.v_events": Exposer(kind="view", reaches=(EVENTS,)),
        "reporting.mv_events": Exposer(kind="matview", reaches=(EVENTS,)),
        "api.get_events": Exposer(kind="function", reaches=(EVENTS,)),
        "api.run_report": Exposer(kind="function", reaches=(EVENTS,), dynamic=True),
    },
)
ALL = {EVENTS, "telemetry.KeyEvents"}


def reads(statement: str, scope: ReadScope = SCOPE, *, search_path: Sequence[str] = DEFAULT_SEARCH_PATH,
          user: str | None = None) -> set[tuple[str, str, str | None]]:
    result = analyse(statement, scope, search_path=search_path, user=user)
    assert result.parsed, result.error
    found: set[tuple[str, str, str | None]] = {(r.object, r.how, r.via) for r in result.reads}
    if found:  # the gate in front of analyse must never hide a read
        assert prefilter(statement, scope, search_path=search_path, user=user)
    return found


def direct(*tables: str) -> set[tuple[str, str, str | None]]:
    return {(t, "direct", None) for t in tables}


ANALYSER = analyse.__code__.co_filename
# PostgreSQL's scanner is quadratic in a run of operator characters; it refuses operators of NAMEDATALEN
# (64) bytes anyway, so the analyser never hands it a longer run.
OPERATOR_RUN = 64


def steps(fn: Callable[[], object]) -> int:
    """Lines of the analyser's own code that ``fn`` executes."""
    return lines_executed(fn, lambda name: name == ANALYSER)


def longest_operator_run(text: str) -> int:
    longest = run = 0
    for c in text:
        run = run + 1 if c in "~!@#^&|`?+-*/%<>=" else 0
        longest = max(longest, run)
    return longest


def parser_work(statement: str) -> tuple[int, int]:
    """What PostgreSQL's scanner is handed for ``statement``: (characters, longest operator run); 0, 0
    when the statement is refused before it."""
    text, refused = parser_text(statement)
    return (0, 0) if refused else (len(text), longest_operator_run(text))


# ---------------------------------------------------------------- bounded cost


@pytest.mark.parametrize(
    "statement",
    [
        "/**/" * 40 + "(SELECT 1)",
        "/**/" * 5000 + "(SELECT 1)",
        "/*" * 2500 + " nested " + "*/" * 2500 + "(SELECT 1)",
        "/*/**/*/" * 2500 + "(SELECT 1)",
        "-- x\n" * 4000 + "(SELECT 1)",
    ],
    ids=["40-comments", "5000-comments", "deeply-nested", "nested-runs", "line-comments"],
)
def test_comment_floods_cost_no_more_than_a_plain_statement(statement: str) -> None:
    # PostgreSQL's scanner alone takes ~100 ms on 5000 "/**/" and grows quadratically.
    plain = "SELECT " + ", ".join(f"c{i}" for i in range(len(statement) // 6)) + " FROM t"
    plain = plain[: max(len(statement), 40)].rpartition(",")[0] + " FROM t"
    baseline = steps(lambda: analyse(plain, SCOPE))
    assert steps(lambda: analyse(statement, SCOPE)) < 2 * baseline
    assert steps(lambda: statement_kind(statement)) < 2 * baseline
    characters, run = parser_work(statement)
    assert characters <= 2 * len(statement) and run <= OPERATOR_RUN
    result = analyse(statement, SCOPE)
    assert (result.parsed, result.kind, result.reads) == (True, "SELECT", [])
    assert statement_kind(statement) == "SELECT"


@pytest.mark.parametrize("unit", ["/**/", "/*/**/*/"])
def test_cost_grows_linearly_with_comment_floods(unit: str) -> None:
    # Four times the input: PostgreSQL's own scanner takes ~15x longer (quadratic); this does 4x the work,
    # and hands the scanner 4x the text with no long operator run in it.
    small, large = unit * 4000 + "(SELECT 1)", unit * 16000 + "(SELECT 1)"
    assert steps(lambda: analyse(large, SCOPE)) <= 4.4 * steps(lambda: analyse(small, SCOPE))
    assert steps(lambda: statement_kind(large)) <= 4.4 * steps(lambda: statement_kind(small))
    (small_text, small_run), (large_text, large_run) = parser_work(small), parser_work(large)
    assert large_text <= 4.4 * small_text and max(small_run, large_run) <= OPERATOR_RUN


def test_operator_runs_are_refused_not_scanned_quadratically() -> None:
    statement = "SELECT 1 " + "+-" * 5000 + " 1 FROM telemetry.key_events"
    plain = "SELECT " + ", ".join(["c"] * 3300) + " FROM t"
    assert steps(lambda: analyse(statement, SCOPE)) < steps(lambda: analyse(plain, SCOPE))
    assert parser_work(statement) == (0, 0)  # refused before PostgreSQL's scanner sees it
    result = analyse(statement, SCOPE)
    assert (result.parsed, result.kind) == (False, "UNPARSED")
    assert prefilter(statement, SCOPE)  # the log reader still sees that it may touch the data
    # a short run is ordinary SQL
    assert reads("SELECT 1 +-+- 1 FROM telemetry.key_events") == direct(EVENTS)


def test_oversized_and_unparseable_statements_come_back_unparsed() -> None:
    huge = "SELECT * FROM telemetry.key_events WHERE x = '" + "x" * MAX_STATEMENT_BYTES + "'"
    for statement in (huge, "SELEC * FROM telemetry.key_events", "SELECT 1 /* unterminated", "SELECT 'open",
                      "SELECT 1\x00; SELECT * FROM telemetry.key_events", "SELECT " + " || ".join(["'x'"] * 2000)):
        result = analyse(statement, SCOPE)
        assert (result.parsed, result.kind, result.reads) == (False, "UNPARSED", [])
        assert result.error


# ---------------------------------------------------------------- names


def test_direct_reads_follow_quoting_and_case_folding() -> None:
    assert reads("SELECT * FROM telemetry.key_events") == direct(EVENTS)
    assert reads("select * from TELEMETRY.Key_Events e join x on true") == direct(EVENTS)
    assert reads('SELECT * FROM "telemetry"."KeyEvents"') == direct("telemetry.KeyEvents")
    assert reads("SELECT * FROM telemetry.KeyEvents") == set()  # folds to keyevents: another table
    assert reads('SELECT * FROM "telemetry"."Key_Events"') == set()
    assert reads('SELECT count(*) FROM "telemetry" . /* spaced */ "key_events"') == direct(EVENTS)


def test_unicode_escaped_identifiers_are_decoded() -> None:
    assert reads('SELECT * FROM U&"\\0074elemetry".key_events') == direct(EVENTS)
    assert reads("SELECT * FROM telemetry.U&\"!006bey!005fevents\" UESCAPE '!'") == direct(EVENTS)


def test_unqualified_names_resolve_through_the_search_path() -> None:
    statement = "SELECT * FROM key_events"
    assert reads(statement, search_path=("$user", "telemetry")) == direct(EVENTS)
    assert reads(statement) == set()  # ("$user", "public") does not hold it
    assert reads(statement, user="telemetry") == direct(EVENTS)  # "$user"
    assert reads(statement, search_path=("pg_catalog", "public")) == set()


def test_comments_and_strings_are_not_code() -> None:
    assert reads("SELECT 1 -- FROM telemetry.key_events") == set()
    assert reads("SELECT 1 /* FROM telemetry.key_events */") == set()
    assert reads("SELECT '/* not a comment', $q$ -- $q$, E'\\' --' FROM telemetry.key_events") == direct(EVENTS)


# ---------------------------------------------------------------- exposers


def test_reads_through_views_matviews_and_functions() -> None:
    assert reads("SELECT * FROM reporting.v_events") == {(EVENTS, "through", "reporting.v_events")}
    assert reads("SELECT * FROM reporting.mv_events") == {(EVENTS, "through", "reporting.mv_events")}
    assert reads("REFRESH MATERIALIZED VIEW reporting.mv_events") == {(EVENTS, "through", "reporting.mv_events")}
    assert reads("SELECT api.get_events()") == {(EVENTS, "through", "api.get_events")}
    assert reads("SELECT * FROM get_events() g", search_path=("api",)) == {(EVENTS, "through", "api.get_events")}
    assert reads("CALL api.get_events()") == {(EVENTS, "through", "api.get_events")}
    # a SECURITY DEFINER function running dynamic SQL may reach anything in the dataset
    assert reads("SELECT 1 WHERE api.run_report('x') > 0") == {(t, "possible", "api.run_report") for t in ALL}


def test_do_blocks_are_dynamic_sql() -> None:
    assert reads("DO $$ BEGIN EXECUTE 'SELECT 1'; END $$") == {(t, "possible", "DO block") for t in ALL}
    named = "DO $$ BEGIN PERFORM count(*) FROM telemetry.key_events; END $$"
    assert reads(named) == {(EVENTS, "possible", "DO block")}
    assert reads("DO $$ BEGIN RAISE NOTICE 'hi'; END $$") == set()


def test_plain_explain_is_only_possible() -> None:
    query = "SELECT * FROM telemetry.key_events"
    assert reads("EXPLAIN " + query) == {(EVENTS, "possible", "EXPLAIN")}
    assert reads("EXPLAIN (ANALYZE false) " + query) == {(EVENTS, "possible", "EXPLAIN")}
    assert reads("EXPLAIN ANALYZE " + query) == direct(EVENTS)


# ---------------------------------------------------------------- statement shapes


def test_cte_names_shadow_tables() -> None:
    assert reads("WITH key_events AS (SELECT 1) SELECT * FROM key_events", search_path=("telemetry",)) == set()
    inner = "WITH key_events AS (SELECT * FROM key_events) SELECT * FROM key_events"
    assert reads(inner, search_path=("telemetry",)) == direct(EVENTS)  # the CTE's own query sees the table
    assert reads("WITH key_events AS (SELECT 1) SELECT * FROM telemetry.key_events") == direct(EVENTS)


def test_writes_read_their_target_only_when_the_outcome_depends_on_it() -> None:
    assert reads("INSERT INTO telemetry.key_events VALUES (1)") == set()
    assert reads("INSERT INTO archive SELECT * FROM telemetry.key_events") == direct(EVENTS)
    assert reads("INSERT INTO telemetry.key_events VALUES (1) RETURNING *") == direct(EVENTS)
    assert reads("UPDATE telemetry.key_events SET seen = true WHERE id = 7") == direct(EVENTS)
    assert reads("UPDATE telemetry.key_events SET seen = true") == set()
    assert reads("DELETE FROM telemetry.key_events") == set()
    assert reads("DELETE FROM archive USING telemetry.key_events e WHERE e.id = archive.id") == direct(EVENTS)


def test_copy_to_reads_and_copy_from_does_not() -> None:
    assert reads("COPY telemetry.key_events TO STDOUT") == direct(EVENTS)
    assert reads("COPY (SELECT id FROM telemetry.key_events) TO STDOUT WITH (FORMAT csv)") == direct(EVENTS)
    assert reads("COPY telemetry.key_events FROM STDIN") == set()


def test_statements_that_create_from_a_query_read_it() -> None:
    assert reads("CREATE TABLE copy AS SELECT * FROM telemetry.key_events") == direct(EVENTS)
    assert reads("SELECT * INTO copy FROM telemetry.key_events") == direct(EVENTS)
    view = "CREATE VIEW leak AS SELECT * FROM telemetry.key_events"
    assert reads(view) == {(EVENTS, "possible", "definition of leak")}  # runs nothing now; reads when used
    assert reads("GRANT SELECT ON telemetry.key_events TO bob") == set()


def test_set_search_path_is_reported_and_applies_to_later_statements() -> None:
    result = analyse("SET search_path TO telemetry, \"$user\"", SCOPE)
    assert (result.kind, result.search_path, result.search_path_local) == ("SET", ("telemetry", "$user"), False)
    result = analyse("SET LOCAL search_path = 'Telemetry'", SCOPE)
    assert (result.search_path, result.search_path_local) == (("Telemetry",), True)
    result = analyse("SELECT set_config('search_path', 'Telemetry, \"Mixed\"', true)", SCOPE)
    assert (result.search_path, result.search_path_local) == (("telemetry", "Mixed"), True)
    assert analyse("RESET search_path", SCOPE).search_path == ("$user", "public")
    result = analyse("SET search_path TO telemetry; SELECT * FROM key_events", SCOPE)
    assert (result.kind, result.search_path) == ("SET", ("telemetry",))
    assert result.reads == [Read(object=EVENTS, how="direct")]


def test_every_statement_of_a_message_counts() -> None:
    result = analyse("SELECT 1; SELECT * FROM reporting.v_events; DELETE FROM telemetry.KeyEvents", SCOPE)
    assert result.kind == "SELECT"
    assert {(r.object, r.via) for r in result.reads} == {(EVENTS, "reporting.v_events")}


def test_whole_schema_scope() -> None:
    scope = ReadScope.of(whole_schemas=["telemetry"])
    assert reads("SELECT * FROM telemetry.anything", scope) == direct("telemetry.anything")
    assert reads("SELECT * FROM anything", scope, search_path=("telemetry",)) == direct("telemetry.anything")
    assert reads("SELECT * FROM public.anything", scope) == set()
    assert prefilter("SELECT * FROM anything", scope, search_path=("telemetry",))
    assert not prefilter("SELECT * FROM anything", scope)


def test_statement_kind() -> None:
    assert statement_kind("  -- note\n /* a /* nested */ one */ ((select 1))") == "SELECT"
    assert statement_kind("with x as (select 1) delete from t") == "WITH"
    assert statement_kind("/* never closed") == "UNKNOWN"
    assert statement_kind("") == "UNKNOWN"
    assert analyse("with x as (select 1) delete from t", SCOPE).kind == "DELETE"


def test_prefilter_passes_only_what_may_touch_the_data() -> None:
    assert not prefilter("SELECT * FROM public.orders WHERE note = 'true'", SCOPE)
    for statement in ("select * from KEY_EVENTS", "SELECT run_report()", 'SELECT U&"\\0061"',
                      "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$",
                      "SELECT * FROM table_to_xml(16384::oid::regclass, true, false, '')", "SELECT E'\\x6b'"):
        assert prefilter(statement, SCOPE), statement
    # DO, CALL and EXECUTE reach nothing analyse follows unless a name or a dynamic-SQL marker is in
    # the text: a busy log's "do not call" strings and prepared statements are not kept for them
    for statement in ("DO $$ BEGIN RAISE NOTICE 'hi'; END $$", "SELECT 'do not call'", "CALL app.tidy()"):
        assert not prefilter(statement, SCOPE), statement
        assert analyse(statement, SCOPE).reads == []


def test_needles_are_what_the_prefilter_looks_for() -> None:
    found = needles(SCOPE)
    # a needle holding another is dropped: wherever "mv_events" is, "v_events" is too
    assert "v_events" in found.substrings and "mv_events" not in found.substrings
    assert {"key_events", "keyevents", "get_events", "run_report", "u&", "execute"} <= set(found.substrings)
    assert found.word_starts == ("e'",)
    assert all(any(n in name for n in found.substrings) for name in ("reporting.mv_events", "api.get_events"))


async def test_analyse_off_loop() -> None:
    results = await analyse_off_loop(["SELECT * FROM reporting.v_events", "SELEC"], SCOPE)
    assert [r.parsed for r in results] == [True, False]
    assert results[0].reads == [Read(object=EVENTS, how="through", via="reporting.v_events")]


# ---------------------------------------------------------------- spellings


def _spell(name: str, draw: st.DrawFn) -> str:
    """One of the ways SQL can name the (lower-case) identifier ``name``."""
    style = draw(st.sampled_from(["case", "quoted", "unicode", "unicode-uescape"]))
    if style == "case":
        return "".join(c.upper() if draw(st.booleans()) else c for c in name)
    if style == "quoted":
        return f'"{name}"'
    esc = "!" if style == "unicode-uescape" else "\\"
    body = "".join(
        draw(st.sampled_from([c, f"{esc}{ord(c):04x}", f"{esc}{ord(c):04X}", f"{esc}+{ord(c):06x}"])) for c in name
    )
    return f'U&"{body}"' + (" UESCAPE '!'" if esc == "!" else "")


@st.composite
def spelled_reads(draw: st.DrawFn) -> tuple[str, ReadScope, tuple[str, ...], str]:
    schema = "s_" + draw(st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8))
    table = "t_" + draw(st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8))
    gap = draw(st.sampled_from(["", " ", " /* c */ ", "\n-- c\n"]))
    qualified = draw(st.booleans())
    name = f"{_spell(schema, draw)}{gap}.{gap}{_spell(table, draw)}" if qualified else _spell(table, draw)
    template = draw(st.sampled_from([
        "SELECT * FROM {}", "select count(*) from {} t where t.x > 1", "COPY {} TO STDOUT",
        "WITH w AS (SELECT * FROM {}) SELECT * FROM w", "UPDATE {} SET x = 1 WHERE y = 2",
        "SELECT 1; TABLE {}", "EXPLAIN ANALYZE SELECT 1 FROM {}",
    ]))
    return template.format(name), ReadScope.of(tables=[f"{schema}.{table}"]), ("other", schema), f"{schema}.{table}"


@settings(max_examples=300, deadline=None)
@given(spelled_reads())
def test_any_spelling_of_a_table_is_found_and_passes_the_prefilter(case: tuple[str, ReadScope, tuple[str, ...],
                                                                              str]) -> None:
    statement, scope, path, table = case
    result = analyse(statement, scope, search_path=path)
    assert result.parsed, (statement, result.error)
    assert Read(object=table, how="direct") in result.reads, statement
    assert prefilter(statement, scope, search_path=path), statement


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "SELECT", "*", "FROM", "key_events", "telemetry.key_events", "U&\"\\006bey_events\"", ",", "(", ")", ";",
    "query_to_xml(", "'select * from key_events'", "E'\\x6bey_events'", "true", "false", "DO $$ BEGIN",
    "EXECUTE", "'x' || 'y'", "END $$", "CREATE FUNCTION f() RETURNS int AS", "LANGUAGE sql", "/*", "*/", "--",
    "\n", "v_events", "reporting.v_events", "api.run_report()", "WHERE", "x", "=", "1", "WITH", "AS",
]), max_size=14).map(" ".join))
def test_prefilter_never_hides_what_analyse_finds(statement: str) -> None:
    for path in (("$user", "public"), ("telemetry", "reporting", "api")):
        result = analyse(statement, SCOPE, search_path=path)
        assert not result.reads or prefilter(statement, SCOPE, search_path=path), statement
