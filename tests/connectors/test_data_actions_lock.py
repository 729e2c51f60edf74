"""An employee's database login cannot stall data actions: no lock they can take is one an apply or a
verification waits for, and a ledger someone else owns is refused, never trusted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from pausegate.connectors.postgres.data_actions import PostgresDataActions
from pausegate.errors import TargetRejectedError
from pausegate.models.data_actions import NullColumn, action_digest
from tests.connectors.data_actions_support import KEYS, TELEMETRY, seed_rows
from tests.support.fault_report import record_result

if TYPE_CHECKING:
    from tests.connectors.conftest import Database

PAUSE = "employee-telemetry/2026-12-07T10:00:00Z"
NULL = NullColumn(dataset="telemetry", table="keystrokes", column="typed_content")
# The keys data actions used to lock: the ledger's, and one per pause and action (the pause key is public).
OLD_KEYS = ["pausegate.data_actions.ledger", f"pausegate.data_actions:{PAUSE}:{action_digest(NULL)}"]


@pytest.fixture
def employee(database: Database) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An ordinary login: CONNECT to the dataset's database (what revocation leaves), nothing else."""
    seed_rows(database.dsn, 50)
    role = f"{database.prefix}employee"
    with database.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    conn = database.connect(role)
    try:
        yield conn
    finally:
        conn.close()


def hold_everything_an_employee_can(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Hold the old advisory keys, and try every lock on the ledger; what was refused, by name."""
    refused: list[str] = []
    for key in OLD_KEYS:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    for attempt in ("LOCK TABLE pausegate.data_actions IN ACCESS EXCLUSIVE MODE",
                    "SELECT 1 FROM pausegate.data_actions FOR UPDATE"):
        try:
            with conn.transaction():
                conn.execute(attempt)
        except psycopg.errors.InsufficientPrivilege:
            refused.append(attempt)
    return refused


class TestAnEmployeeLoginCannotStallDataActions:
    async def test_an_apply_and_a_verification_finish_while_an_employee_holds_the_old_keys(
        self, database: Database, employee: psycopg.Connection[tuple[object, ...]]
    ) -> None:
        # The lock timeout a stalled apply would hit: short, so a wait fails the test rather than slows it.
        connector = PostgresDataActions(database.dsn, keys=KEYS, lock_timeout_ms=1_000)
        await connector.verify("another-pause", TELEMETRY, [NULL])  # the ledger exists, as after any earlier action
        refused = hold_everything_an_employee_can(employee)
        assert len(refused) == 2  # the ledger is the administrative role's alone

        applied = await connector.apply(PAUSE, TELEMETRY, 0, NULL)
        check = await connector.verify(PAUSE, TELEMETRY, [NULL])

        assert applied.applied_now and applied.rows_affected > 0
        assert check.ok, check.problems
        # The employee still holds the keys throughout.
        with database.connect() as admin:
            held = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()
        assert held == (len(OLD_KEYS),)
        record_result("an employee login holds the data actions' lock keys", "apply and verify a data action",
                      injected=len(OLD_KEYS) + len(refused),
                      outcome="applied once and verified; the ledger's locks refused to the employee")

    async def test_a_first_apply_creates_its_ledger_while_an_employee_holds_the_old_keys(
        self, database: Database, employee: psycopg.Connection[tuple[object, ...]]
    ) -> None:
        for key in OLD_KEYS:
            employee.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        connector = PostgresDataActions(database.dsn, keys=KEYS, lock_timeout_ms=1_000)
        assert (await connector.apply(PAUSE, TELEMETRY, 0, NULL)).applied_now
        assert (await connector.verify(PAUSE, TELEMETRY, [NULL])).ok


class TestALedgerSomeoneElseControlsIsRefused:
    async def test_a_ledger_schema_owned_by_another_role(self, database: Database) -> None:
        seed_rows(database.dsn, 10)
        role = f"{database.prefix}squatter"
        with database.connect() as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            admin.execute(sql.SQL("CREATE SCHEMA pausegate AUTHORIZATION {}").format(sql.Identifier(role)))
        connector = PostgresDataActions(database.dsn, keys=KEYS)
        with pytest.raises(TargetRejectedError, match=f"schema pausegate belongs to role {role}"):
            await connector.apply(PAUSE, TELEMETRY, 0, NULL)

    async def test_a_ledger_schema_others_may_use(self, database: Database) -> None:
        seed_rows(database.dsn, 10)
        connector = PostgresDataActions(database.dsn, keys=KEYS)
        await connector.verify(PAUSE, TELEMETRY, [NULL])
        with database.connect() as admin:
            admin.execute("GRANT USAGE ON SCHEMA pausegate TO PUBLIC")
        with pytest.raises(TargetRejectedError, match="schema pausegate grants privileges to public"):
            await connector.apply(PAUSE, TELEMETRY, 0, NULL)
