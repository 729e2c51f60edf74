"""Data actions against a real PostgreSQL: each effect, its verification, idempotence, refusals, pseudonyms."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from pydantic import TypeAdapter, ValidationError

from pausegate.connectors.postgres.data_actions import PostgresDataActions, hmac_pads
from pausegate.embedded.postgres import dsn_for_database
from pausegate.errors import TargetRejectedError
from pausegate.models.data_actions import (
    DataAction,
    DropColumn,
    NullColumn,
    PseudonymiseColumn,
    PurgeOlderThan,
    PurgeSubjects,
    action_digest,
    approver_line,
    unknown_datasets,
)
from tests.connectors.data_actions_support import (
    KEY,
    KEYS,
    OTHER_KEY,
    TELEMETRY,
    captured_at,
    pseudonym,
    seed_rows,
)
from tests.support.polling import polled

if TYPE_CHECKING:
    from conftest import Database

ROWS = 500
PAUSE = "employee-telemetry/2026-11-30T01:00:00Z"
NULL = NullColumn(dataset="telemetry", table="keystrokes", column="typed_content")
DROP = DropColumn(dataset="telemetry", table="keystrokes", column="agent_id")
CUTOFF = captured_at(200) + timedelta(seconds=30)  # rows 1..200 are older
PURGE_OLD = PurgeOlderThan(dataset="telemetry", table="keystrokes", column="captured_at", cutoff=CUTOFF)
PURGE_SUBJECTS = PurgeSubjects(
    dataset="telemetry", table="keystrokes", subject_column="employee", subjects=["employee_0003", "employee_0001"]
)
PSEUDO = PseudonymiseColumn(dataset="telemetry", table="keystrokes", column="typed_content", key_id="tel-2026")
ADAPTER: TypeAdapter[Any] = TypeAdapter(DataAction)


@pytest.fixture
def telemetry(database: Database) -> Database:
    seed_rows(database.dsn, ROWS)
    return database


def one(db: Database, query: str, params: Any = ()) -> Any:
    with db.connect() as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[call-overload]
    assert row is not None
    return row[0]


def contents(db: Database) -> dict[int, str | None]:
    with db.connect() as conn:
        return dict(conn.execute("SELECT id, typed_content FROM telemetry.keystrokes").fetchall())  # type: ignore[arg-type]


def ledger(db: Database) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT pause_key, action_digest, action_index, kind, target, rows_affected FROM pausegate.data_actions"
        ).fetchall()


class TestModels:
    def test_every_kind_is_destructive_and_shown_as_such(self) -> None:
        for action in (NULL, DROP, PURGE_OLD, PURGE_SUBJECTS, PSEUDO):
            assert action.destructive
            assert approver_line(action).startswith("DESTRUCTIVE: ")
        assert approver_line(NULL) == (
            "DESTRUCTIVE: null telemetry.keystrokes.typed_content in every row (cannot be undone)"
        )

    def test_the_digest_does_not_depend_on_how_subjects_were_listed(self) -> None:
        again = PurgeSubjects(
            dataset="telemetry", table="keystrokes", subject_column="employee",
            subjects=["employee_0001", "employee_0003", "employee_0001"],
        )
        assert action_digest(again) == action_digest(PURGE_SUBJECTS)
        assert action_digest(NULL) != action_digest(DROP)

    def test_the_kind_selects_the_action_and_round_trips(self) -> None:
        for action in (NULL, DROP, PURGE_OLD, PURGE_SUBJECTS, PSEUDO):
            assert ADAPTER.validate_python(action.model_dump(mode="json")) == action

    @pytest.mark.parametrize(
        "raw",
        [
            {"kind": "null_column", "dataset": "telemetry", "table": "keystrokes", "column": 'x"; DROP TABLE y; --'},
            {"kind": "null_column", "dataset": "telemetry", "table": "Keystrokes", "column": "c"},
            {"kind": "null_column", "dataset": "telemetry", "table": "k" * 64, "column": "c"},
            {"kind": "drop_table", "dataset": "telemetry", "table": "keystrokes"},
            {"kind": "purge_older_than", "dataset": "telemetry", "table": "t", "column": "c",
             "cutoff": "2026-01-01T00:00:00"},
            {"kind": "purge_subjects", "dataset": "telemetry", "table": "t", "subject_column": "c", "subjects": []},
            {"kind": "purge_subjects", "dataset": "telemetry", "table": "t", "subject_column": "c",
             "subjects": [str(i) for i in range(1001)]},
            {"kind": "pseudonymise_column", "dataset": "telemetry", "table": "t", "column": "c", "key_id": "../k"},
        ],
    )
    def test_bad_names_and_shapes_are_refused_at_parse(self, raw: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            ADAPTER.validate_python(raw)

    def test_a_hostile_identifier_of_megabytes_is_refused_quickly(self) -> None:
        with pytest.raises(ValidationError) as refused:
            ADAPTER.validate_python({"kind": "null_column", "dataset": "telemetry", "table": "a" * 5_000_000 + "!",
                                     "column": "c"})
        # refused on its length, before any pattern reads the megabytes
        assert [e["type"] for e in refused.value.errors()] == ["string_too_long"]

    def test_actions_naming_an_unknown_dataset_are_reported(self) -> None:
        other = NullColumn(dataset="hr", table="t", column="c")
        assert unknown_datasets([NULL, other], ["telemetry"]) == [
            "data_actions[1] (null hr.t.c in every row): dataset 'hr' is not one of the runbook's (telemetry)"
        ]


class TestApplyAndVerify:
    async def test_null_leaves_no_value_and_counts_the_rows_it_changed(self, telemetry: Database) -> None:
        non_null = one(telemetry, "SELECT count(typed_content) FROM telemetry.keystrokes")
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        assert not (await connector.verify(PAUSE, TELEMETRY, [NULL])).ok

        result = await connector.apply(PAUSE, TELEMETRY, 0, NULL)

        assert (result.applied_now, result.rows_affected, result.column) == (True, non_null, "typed_content")
        assert non_null == ROWS - ROWS // 5
        assert one(telemetry, "SELECT count(typed_content) FROM telemetry.keystrokes") == 0
        assert one(telemetry, "SELECT count(*) FROM telemetry.keystrokes") == ROWS
        check = await connector.verify(PAUSE, TELEMETRY, [NULL])
        assert check.ok, check.problems
        assert [r.rows_affected for r in check.results] == [non_null]

    async def test_verify_says_what_is_missing_before_and_what_came_back_after(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        before = await connector.verify(PAUSE, TELEMETRY, [NULL])
        assert before.problems == [
            "data_actions[0] (null telemetry.keystrokes.typed_content in every row): "
            "not applied (no ledger record for this pause)",
            f"data_actions[0] (null telemetry.keystrokes.typed_content in every row): {ROWS - ROWS // 5} "
            "non-null values left in telemetry.keystrokes.typed_content",
        ]
        await connector.apply(PAUSE, TELEMETRY, 0, NULL)
        with telemetry.connect() as conn:
            conn.execute(
                "INSERT INTO telemetry.keystrokes (agent_id, employee, key_code, typed_content) "
                "VALUES ('a', 'employee_0001', 1, 'typed again')"
            )
        after = await connector.verify(PAUSE, TELEMETRY, [NULL])
        assert not after.ok
        assert after.problems == [
            "data_actions[0] (null telemetry.keystrokes.typed_content in every row): "
            "1 non-null values left in telemetry.keystrokes.typed_content"
        ]

    async def test_drop_removes_the_column_and_counts_its_values(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        result = await connector.apply(PAUSE, TELEMETRY, 1, DROP)
        assert (result.rows_affected, result.index) == (ROWS, 1)
        columns = one(
            telemetry,
            "SELECT array_agg(column_name::text) FROM information_schema.columns "
            "WHERE table_schema = 'telemetry' AND table_name = 'keystrokes'",
        )
        assert "agent_id" not in columns and "typed_content" in columns
        check = await connector.verify(PAUSE, TELEMETRY, [NULL, DROP])
        assert check.problems == [
            "data_actions[0] (null telemetry.keystrokes.typed_content in every row): "
            "not applied (no ledger record for this pause)",
            f"data_actions[0] (null telemetry.keystrokes.typed_content in every row): {ROWS - ROWS // 5} "
            "non-null values left in telemetry.keystrokes.typed_content",
        ]
        assert [(r.index, r.kind) for r in check.results] == [(1, "drop_column")]

    async def test_a_nulled_column_dropped_later_in_the_plan_verifies(self, telemetry: Database) -> None:
        with telemetry.connect() as conn:  # the example's view reads the column: a drop would break it
            conn.execute("DROP VIEW analytics.recent_keystrokes")
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        then_drop = DropColumn(dataset="telemetry", table="keystrokes", column="typed_content")
        plan: list[Any] = [NULL, then_drop]
        assert await connector.check(TELEMETRY, plan) == []
        for i, action in enumerate(plan):
            await connector.apply(PAUSE, TELEMETRY, i, action)
        check = await connector.verify(PAUSE, TELEMETRY, plan)
        assert check.ok, check.problems
        assert [r.rows_affected for r in check.results] == [ROWS - ROWS // 5, 0]

    async def test_purge_by_age_deletes_exactly_the_rows_before_the_cutoff(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        result = await connector.apply(PAUSE, TELEMETRY, 0, PURGE_OLD)
        assert result.rows_affected == 200
        assert one(telemetry, "SELECT min(captured_at) FROM telemetry.keystrokes") == captured_at(201)
        assert one(telemetry, "SELECT count(*) FROM telemetry.keystrokes") == ROWS - 200
        assert (await connector.verify(PAUSE, TELEMETRY, [PURGE_OLD])).ok
        with telemetry.connect() as conn:  # a row from before the cutoff comes back
            conn.execute(
                "INSERT INTO telemetry.keystrokes (agent_id, employee, key_code, captured_at) "
                "VALUES ('a', 'employee_0001', 1, %s)",
                (captured_at(3),),
            )
        check = await connector.verify(PAUSE, TELEMETRY, [PURGE_OLD])
        assert check.problems == [
            f"data_actions[0] ({PURGE_OLD.describe()}): 1 rows of telemetry.keystrokes older than "
            f"{CUTOFF.isoformat()} left"
        ]

    async def test_the_cutoff_is_absolute_whatever_the_session_time_zone(self, telemetry: Database) -> None:
        with telemetry.connect() as conn:
            conn.execute("ALTER TABLE telemetry.keystrokes ADD COLUMN local_time timestamp")
            conn.execute("SET TimeZone = 'America/New_York'")
            conn.execute("UPDATE telemetry.keystrokes SET local_time = captured_at AT TIME ZONE 'UTC'")
        action = PurgeOlderThan(dataset="telemetry", table="keystrokes", column="local_time",
                                cutoff=CUTOFF.astimezone(UTC))
        result = await PostgresDataActions(telemetry.dsn, keys=KEYS).apply(PAUSE, TELEMETRY, 0, action)
        assert result.rows_affected == 200

    async def test_purge_by_subject_deletes_every_row_about_them_and_no_other(self, telemetry: Database) -> None:
        about = one(
            telemetry,
            "SELECT count(*) FROM telemetry.keystrokes WHERE employee IN ('employee_0001', 'employee_0003')",
        )
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        result = await connector.apply(PAUSE, TELEMETRY, 0, PURGE_SUBJECTS)
        assert result.rows_affected == about > 0
        assert one(telemetry, "SELECT count(*) FROM telemetry.keystrokes") == ROWS - about
        assert one(telemetry, "SELECT count(DISTINCT employee) FROM telemetry.keystrokes") == 5
        assert (await connector.verify(PAUSE, TELEMETRY, [PURGE_SUBJECTS])).ok

    async def test_pseudonyms_are_the_keyed_hmac_differ_from_originals_and_are_stable(
        self, telemetry: Database, sibling_database: Database
    ) -> None:
        before = contents(telemetry)
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)

        result = await connector.apply(PAUSE, TELEMETRY, 0, PSEUDO)

        after = contents(telemetry)
        assert result.rows_affected == sum(v is not None for v in before.values())
        for row, original in before.items():
            if original is None:
                assert after[row] is None
            else:
                assert after[row] == pseudonym(original) != original
        # Same original, same pseudonym: the 13 distinct contents stay 13 distinct pseudonyms.
        assert len({v for v in after.values() if v}) == len({v for v in before.values() if v}) == 13
        assert (await connector.verify(PAUSE, TELEMETRY, [PSEUDO])).ok

        # Another run (another database, another pause) with the same key: the same pseudonyms.
        seed_rows(sibling_database.dsn, ROWS)
        await PostgresDataActions(sibling_database.dsn, keys=KEYS).apply("other-pause", TELEMETRY, 0, PSEUDO)
        assert contents(sibling_database) == after

    async def test_another_key_gives_other_pseudonyms(self, telemetry: Database, sibling_database: Database) -> None:
        seed_rows(sibling_database.dsn, ROWS)
        await PostgresDataActions(telemetry.dsn, keys=KEYS).apply(PAUSE, TELEMETRY, 0, PSEUDO)
        await PostgresDataActions(sibling_database.dsn, keys=OTHER_KEY).apply(PAUSE, TELEMETRY, 0, PSEUDO)
        ours, theirs = contents(telemetry), contents(sibling_database)
        assert all(ours[r] != theirs[r] for r in ours if ours[r] is not None)

    async def test_verify_finds_a_value_that_is_not_a_pseudonym(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        await connector.apply(PAUSE, TELEMETRY, 0, PSEUDO)
        with telemetry.connect() as conn:
            conn.execute("UPDATE telemetry.keystrokes SET typed_content = 'hunter2' WHERE id = 7")
        check = await connector.verify(PAUSE, TELEMETRY, [PSEUDO])
        assert check.problems == [
            f"data_actions[0] ({PSEUDO.describe()}): 1 values of telemetry.keystrokes.typed_content are not pseudonyms"
        ]

    def test_the_pads_are_rfc_2104_for_short_and_long_keys(self) -> None:
        import hashlib
        import hmac

        for key in (b"k" * 16, b"k" * 64, b"k" * 100):
            inner, outer = hmac_pads(key)
            expected = hmac.new(key, b"message", hashlib.sha256).digest()
            assert hashlib.sha256(outer + hashlib.sha256(inner + b"message").digest()).digest() == expected


class TestExactlyOnce:
    @pytest.mark.parametrize("action", [NULL, DROP, PURGE_OLD, PURGE_SUBJECTS, PSEUDO], ids=lambda a: a.kind)
    async def test_applying_twice_changes_the_data_once_and_returns_the_same_count(
        self, telemetry: Database, action: Any
    ) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        first = await connector.apply(PAUSE, TELEMETRY, 2, action)
        state = contents(telemetry) if not isinstance(action, DropColumn) else None
        second = await connector.apply(PAUSE, TELEMETRY, 2, action)

        assert (first.applied_now, second.applied_now) == (True, False)
        assert second.rows_affected == first.rows_affected > 0
        assert second.digest == first.digest == action_digest(action)
        if state is not None:
            assert contents(telemetry) == state  # a pseudonym is not pseudonymised again
        assert ledger(telemetry) == [
            (PAUSE, action_digest(action), 2, action.kind, action.qualified, first.rows_affected)
        ]

    async def test_two_attempts_at_once_apply_it_once(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        results = await asyncio.gather(*(connector.apply(PAUSE, TELEMETRY, 0, PSEUDO) for _ in range(4)))
        assert sorted(r.applied_now for r in results) == [False, False, False, True]
        assert {r.rows_affected for r in results} == {ROWS - ROWS // 5}
        assert len(ledger(telemetry)) == 1
        assert (await connector.verify(PAUSE, TELEMETRY, [PSEUDO])).ok
        assert one(telemetry, "SELECT count(*) FROM telemetry.keystrokes WHERE typed_content = %s",
                   (pseudonym("password1"),)) > 0  # pseudonymised once, not twice

    async def test_another_pause_is_another_application(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        await connector.apply(PAUSE, TELEMETRY, 0, NULL)
        again = await connector.apply("another-pause", TELEMETRY, 0, NULL)
        assert (again.applied_now, again.rows_affected) == (True, 0)
        assert len(ledger(telemetry)) == 2

    async def test_a_refused_action_changes_nothing(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys={})
        before = contents(telemetry)
        with pytest.raises(TargetRejectedError, match="pseudonym key 'tel-2026' is not configured"):
            await connector.apply(PAUSE, TELEMETRY, 0, PSEUDO)
        assert contents(telemetry) == before
        assert ledger(telemetry) == []


class TestCheck:
    async def test_the_example_plans_action_passes(self, telemetry: Database) -> None:
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        assert await connector.check(TELEMETRY, [NULL, DROP, PURGE_OLD, PURGE_SUBJECTS, PSEUDO]) == []

    async def test_each_bad_action_is_refused_with_what_and_where(self, telemetry: Database) -> None:
        with telemetry.connect() as conn:
            conn.execute("CREATE TABLE telemetry.short (id int PRIMARY KEY, note varchar(10), ref int)")
            conn.execute("ALTER TABLE telemetry.short ADD FOREIGN KEY (ref) REFERENCES telemetry.short (id)")
            conn.execute("CREATE VIEW telemetry.titles AS SELECT window_title FROM telemetry.keystrokes")
        spec = TELEMETRY.model_copy(update={"tables": []})
        future = datetime.now(UTC) + timedelta(days=1)
        bad: list[Any] = [
            NullColumn(dataset="telemetry", table="nowhere", column="c"),
            NullColumn(dataset="telemetry", table="keystrokes", column="nothing"),
            NullColumn(dataset="telemetry", table="keystrokes", column="id"),
            NullColumn(dataset="telemetry", table="keystrokes", column="employee"),
            DropColumn(dataset="telemetry", table="keystrokes", column="window_title"),
            PurgeOlderThan(dataset="telemetry", table="keystrokes", column="employee", cutoff=CUTOFF),
            PurgeOlderThan(dataset="telemetry", table="keystrokes", column="captured_at", cutoff=future),
            PseudonymiseColumn(dataset="telemetry", table="keystrokes", column="typed_content", key_id="unknown"),
            PseudonymiseColumn(dataset="telemetry", table="short", column="note", key_id="tel-2026"),
            DropColumn(dataset="telemetry", table="short", column="ref"),
            NullColumn(dataset="telemetry", table="titles", column="window_title"),
            PurgeSubjects(dataset="telemetry", table="keystrokes", subject_column="key_code", subjects=["1"]),
            NullColumn(dataset="hr", table="keystrokes", column="typed_content"),
        ]
        problems = await PostgresDataActions(telemetry.dsn, keys=KEYS).check(spec, bad)
        d = [f"data_actions[{i}] ({a.describe()}): " for i, a in enumerate(bad)]
        assert problems == [
            d[0] + "table telemetry.nowhere does not exist",
            d[1] + "column 'nothing' does not exist in telemetry.keystrokes",
            d[2] + "telemetry.keystrokes.id is part of the primary key",
            d[2] + "telemetry.keystrokes.id is NOT NULL (drop it or pseudonymise it instead)",
            d[3] + "telemetry.keystrokes.employee is NOT NULL (drop it or pseudonymise it instead)",
            d[4] + "telemetry.keystrokes.window_title is used by analytics.recent_keystrokes, telemetry.titles",
            d[5] + "telemetry.keystrokes.employee is of type text, not a timestamp or date",
            d[6] + f"cutoff {future.isoformat()} is in the future"
            + problems[7][len(d[6] + f"cutoff {future.isoformat()} is in the future"):],
            d[7] + "pseudonym key 'unknown' is not configured (configured: tel-2026)",
            d[8] + "telemetry.short.note holds at most 10 characters; a pseudonym has 64",
            d[9] + "telemetry.short.ref is part of a foreign key",
            d[10] + "telemetry.titles is not a table (a view holds no rows of its own)",
            d[11] + "telemetry.keystrokes.key_code is of type int4; subjects are matched as text (text or varchar)",
        ]
        # The last names another dataset: it is that dataset's to check, positions stay the plan's.
        assert len(problems) == 13

    async def test_a_table_outside_the_dataset_and_a_trigger_are_problems(self, telemetry: Database) -> None:
        with telemetry.connect() as conn:
            conn.execute("CREATE TABLE telemetry.copies (typed_content text)")
            conn.execute(
                "CREATE FUNCTION telemetry.keep() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO telemetry.copies VALUES (OLD.typed_content); RETURN NEW; END $$"
            )
            conn.execute(
                "CREATE TRIGGER keep_old BEFORE UPDATE ON telemetry.keystrokes "
                "FOR EACH ROW EXECUTE FUNCTION telemetry.keep()"
            )
        outside = NullColumn(dataset="telemetry", table="copies", column="typed_content")
        connector = PostgresDataActions(telemetry.dsn, keys=KEYS)
        assert await connector.check(TELEMETRY, [NULL, outside]) == [
            f"data_actions[0] ({NULL.describe()}): telemetry.keystrokes has triggers that would run on every "
            "row changed (keep_old)",
            f"data_actions[1] ({outside.describe()}): table 'copies' is not one of dataset telemetry's tables "
            "(keystrokes, mouse_events)",
        ]
        with pytest.raises(TargetRejectedError, match="keep_old"):
            await connector.apply(PAUSE, TELEMETRY, 0, NULL)
        assert one(telemetry, "SELECT count(*) FROM telemetry.copies") == 0

    async def test_a_column_dropped_earlier_in_the_plan_is_a_problem(self, telemetry: Database) -> None:
        then_null = NullColumn(dataset="telemetry", table="keystrokes", column="agent_id")
        problems = await PostgresDataActions(telemetry.dsn, keys=KEYS).check(TELEMETRY, [DROP, then_null])
        assert problems == [
            f"data_actions[1] ({then_null.describe()}): column telemetry.keystrokes.agent_id is dropped by "
            "an earlier action"
        ]


class TestKeyNotLogged:
    async def test_neither_the_key_nor_its_pads_reach_the_statement_log(self, postgres: tuple[str, Path]) -> None:
        dsn, log_dir = postgres
        name = f"t_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        db_dsn = dsn_for_database(dsn, name)
        try:
            seed_rows(db_dsn, 20)
            await PostgresDataActions(db_dsn, keys=KEYS).apply(PAUSE, TELEMETRY, 0, PSEUDO)
            marker = f"pausegate-fence-{uuid.uuid4().hex}"
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("SELECT {}").format(sql.Literal(marker)))

            async def logged() -> str:
                return "".join(p.read_text(errors="replace") for p in log_dir.glob("*.json"))
            # the collector has written everything logged before the fence
            text = await polled(logged, until=lambda text: marker in text, what="the fence in the statement log",
                                every=0.05)
            assert "encode(sha256(" in text  # the statement itself is logged
            inner, outer = hmac_pads(KEY.encode())
            for secret in (KEY, inner.hex(), outer.hex()):
                assert secret not in text
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
