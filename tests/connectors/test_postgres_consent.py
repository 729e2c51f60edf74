"""The consent table's provenance on a real PostgreSQL: the database records who wrote each row and
when whatever the writer supplies; a table without it is refused, saying what is missing, when the
connection's role may not add it; a withdrawal is written back as the tool's role."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pausegate.connectors.postgres.conditions import PROVENANCE_TRIGGER, WRITTEN_AT_TRIGGER, PostgresConditions
from pausegate.errors import TargetRejectedError
from pausegate.models.conditions import ConsentRecord
from pausegate.models.runbook import ConsentSpec
from pausegate.policy.conditions import counts_as_consent
from pausegate.reference.example.seed import CONSENT_REGISTRAR, consents, seed_example
from pausegate.runbook.loader import load_runbook
from tests.connectors.conftest import Database

SPEC = ConsentSpec(dataset="telemetry", table="consent", subject_column="employee", granted_column="granted")
SUPPLIED = datetime(2000, 1, 1, tzinfo=UTC)
RUNBOOK = Path(__file__).parents[2] / "runbooks" / "employee-telemetry.yaml"


@pytest.fixture
def telemetry(database: Database) -> Database:
    seed_example(database.dsn, employees=5)
    return database


def login(db: Database, name: str, *grants: str) -> str:
    role = db.prefix + name
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA telemetry TO {}").format(sql.Identifier(role)))
        for grant in grants:
            conn.execute(sql.SQL("GRANT {} ON telemetry.consent TO {}").format(sql.SQL(grant), sql.Identifier(role)))
    return role


class TestConsentProvenance:
    async def test_the_database_records_the_writer_and_its_own_time_whatever_is_supplied(
        self, telemetry: Database
    ) -> None:
        db = PostgresConditions(telemetry.dsn)
        await db.ensure_provenance("telemetry", SPEC)
        await db.ensure_provenance("telemetry", SPEC)  # a second time finds it in place
        employee = login(telemetry, "employee", "SELECT", "UPDATE")
        with psycopg.connect(telemetry.dsn_as(employee), autocommit=True) as conn:
            conn.execute("UPDATE telemetry.consent SET granted = true, granted_by = 'hr', granted_as = 'hr',"
                         " granted_at = %s WHERE employee = 'employee_0004'", (SUPPLIED,))
        rows = {r.subject: r for r in await db.consent_rows("telemetry", SPEC)}
        flipped = rows["employee_0004"]
        assert (flipped.granted, flipped.granted_by, flipped.granted_as) == (True, employee, employee)
        assert flipped.granted_at is not None and flipped.granted_at > SUPPLIED
        # The worked example's rows were written through HR's registry, and the database says so.
        assert rows["employee_0001"].granted_as == CONSENT_REGISTRAR and rows["employee_0001"].granted_at is not None

    async def test_the_worked_example_counts_only_consent_written_through_hr_s_registry(
        self, telemetry: Database
    ) -> None:
        spec = load_runbook(RUNBOOK).consent
        assert spec is not None and spec.granting_roles == [CONSENT_REGISTRAR]
        db = PostgresConditions(telemetry.dsn)
        await db.ensure_provenance("telemetry", spec)  # in place already: the example's seed added it
        before = {r.subject for r in await db.consent_rows("telemetry", spec) if counts_as_consent(spec, r)}
        assert before == {f"employee_{n:04d}" for n in range(1, 6) if consents(n)}
        # a declined consent flipped by someone with UPDATE on the table, not through the registry
        employee = login(telemetry, "employee", "SELECT", "UPDATE")
        with psycopg.connect(telemetry.dsn_as(employee), autocommit=True) as conn:
            conn.execute("SET ROLE NONE")
            conn.execute("UPDATE telemetry.consent SET granted = true WHERE employee = 'employee_0004'")
        rows = {r.subject: r for r in await db.consent_rows("telemetry", spec)}
        assert rows["employee_0004"].granted is True and not counts_as_consent(spec, rows["employee_0004"])
        assert {s for s, r in rows.items() if counts_as_consent(spec, r)} == before

    async def test_a_table_without_provenance_the_role_may_not_add_is_refused_saying_what_is_missing(
        self, telemetry: Database
    ) -> None:
        with psycopg.connect(telemetry.dsn, autocommit=True) as conn:  # HR's table as it was before pausegate
            conn.execute(sql.SQL("DROP TRIGGER {} ON telemetry.consent").format(sql.Identifier(PROVENANCE_TRIGGER)))
            conn.execute("ALTER TABLE telemetry.consent DROP COLUMN granted_by, DROP COLUMN granted_as,"
                         " DROP COLUMN granted_at")
        reader = login(telemetry, "reader", "SELECT")
        db = PostgresConditions(telemetry.dsn_as(reader))
        with pytest.raises(TargetRejectedError, match=r"lacks provenance .*missing granted_as, granted_at, "
                                                      r"granted_by, trigger .*may not add it"):
            await db.ensure_provenance("telemetry", SPEC)
        with pytest.raises(TargetRejectedError, match="lacks provenance"):
            await db.consent_rows("telemetry", SPEC)

    async def test_a_disabled_provenance_trigger_is_provenance_missing(self, telemetry: Database) -> None:
        await PostgresConditions(telemetry.dsn).ensure_provenance("telemetry", SPEC)
        with psycopg.connect(telemetry.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER TABLE telemetry.consent DISABLE TRIGGER {}").format(
                sql.Identifier(PROVENANCE_TRIGGER)))
        reader = login(telemetry, "reader", "SELECT")
        with pytest.raises(TargetRejectedError, match=f"trigger {PROVENANCE_TRIGGER} enabled"):
            await PostgresConditions(telemetry.dsn_as(reader)).consent_rows("telemetry", SPEC)

    async def test_a_withdrawal_is_written_back_as_the_tools_role_at_the_servers_time(
        self, telemetry: Database
    ) -> None:
        db = PostgresConditions(telemetry.dsn)
        await db.ensure_provenance("telemetry", SPEC)
        changed, at = await db.withdraw("telemetry", SPEC, "employee_0001")
        assert changed == 1
        assert (await db.withdraw("telemetry", SPEC, "employee_0001"))[0] == 0  # already withdrawn
        row = next(r for r in await db.consent_rows("telemetry", SPEC) if r.subject == "employee_0001")
        assert row.granted is False and row.granted_at is not None and row.granted_at <= at
        assert not counts_as_consent(SPEC, row)


class TestWhatCounts:
    def test_only_a_grant_written_as_a_granting_role_counts_when_the_runbook_names_them(self) -> None:
        spec = SPEC.model_copy(update={"granting_roles": ["hr_consent"]})
        at = datetime(2026, 1, 1, tzinfo=UTC)
        hr = ConsentRecord(subject="e", granted=True, granted_by="alice", granted_as="hr_consent", granted_at=at)
        assert counts_as_consent(spec, hr)
        assert not counts_as_consent(spec, hr.model_copy(update={"granted_as": "employee_0004"}))
        assert not counts_as_consent(spec, hr.model_copy(update={"granted_as": None, "granted_at": None}))
        assert not counts_as_consent(spec, hr.model_copy(update={"granted": False}))
        assert counts_as_consent(SPEC, hr.model_copy(update={"granted_as": "employee_0004"}))


class TestServerWriteTime:
    async def test_a_backdated_row_is_found_by_the_time_the_server_stamped(self, telemetry: Database) -> None:
        db = PostgresConditions(telemetry.dsn)
        since = await db.stamp_writes("telemetry", "keystrokes")
        assert await db.stamp_writes("telemetry", "keystrokes") >= since  # a second time finds it in place
        with psycopg.connect(telemetry.dsn_as("telemetry_ingest"), autocommit=True) as conn:
            conn.execute("INSERT INTO telemetry.keystrokes (agent_id, employee, captured_at, key_code, typed_content,"
                         " pausegate_written_at) VALUES ('a', 'e', %s, 1, 'backdated', %s)", (SUPPLIED, SUPPLIED))
        args = ("telemetry", "keystrokes", ["typed_content"], "captured_at", since)
        assert await db.rows_carrying(*args) == 0  # the writer's date alone hides it
        assert await db.rows_carrying(*args, written_since=since) == 1

    async def test_a_disabled_stamp_fails_the_check(self, telemetry: Database) -> None:
        db = PostgresConditions(telemetry.dsn)
        since = await db.stamp_writes("telemetry", "keystrokes")
        with psycopg.connect(telemetry.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER TABLE telemetry.keystrokes DISABLE TRIGGER {}").format(
                sql.Identifier(WRITTEN_AT_TRIGGER)))
        with pytest.raises(TargetRejectedError, match="missing, disabled or not the tool's"):
            await db.rows_carrying("telemetry", "keystrokes", ["typed_content"], "captured_at", since,
                                   written_since=since)
