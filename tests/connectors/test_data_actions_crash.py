"""A process applying a data action is killed (SIGKILL) mid-statement; the rerun applies it exactly once.

The statement is held mid-way deterministically: the test locks the last row the statement must
change (or the table, for a drop), so the killed process's backend has already changed every row
before it when it waits. Nothing is committed, so the server rolls it all back; the rerun then
applies the action once, with the right count, and the ledger holds one row.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import pytest

from pausegate.connectors.postgres.data_actions import PostgresDataActions
from pausegate.models.data_actions import (
    DropColumn,
    NullColumn,
    PseudonymiseColumn,
    PurgeOlderThan,
    PurgeSubjects,
    action_digest,
)
from tests.connectors.data_actions_support import KEYS, TELEMETRY, captured_at, pseudonym, seed_rows
from tests.support.polling import polled

if TYPE_CHECKING:
    from conftest import Database

T = TypeVar("T")

ROWS = 50_000
PAUSE = "employee-telemetry/crash"
SUPPORT = Path(__file__).with_name("data_actions_support.py")
ROOT = Path(__file__).resolve().parents[2]
OLD = 30_000  # rows 1..OLD are before the cutoff

# (action, the row the test locks so the statement waits on it: the last one the statement changes)
CASES: list[tuple[Any, str | None]] = [
    (NullColumn(dataset="telemetry", table="keystrokes", column="typed_content"),
     "SELECT max(id) FROM telemetry.keystrokes WHERE typed_content IS NOT NULL"),
    (PseudonymiseColumn(dataset="telemetry", table="keystrokes", column="typed_content", key_id="tel-2026"),
     "SELECT max(id) FROM telemetry.keystrokes WHERE typed_content IS NOT NULL"),
    (PurgeOlderThan(dataset="telemetry", table="keystrokes", column="captured_at", cutoff=captured_at(OLD + 1)),
     "SELECT max(id) FROM telemetry.keystrokes WHERE captured_at < '2026-01-01'::timestamptz + interval '30001 min'"),
    (PurgeSubjects(dataset="telemetry", table="keystrokes", subject_column="employee", subjects=["employee_0002"]),
     "SELECT max(id) FROM telemetry.keystrokes WHERE employee = 'employee_0002'"),
    (DropColumn(dataset="telemetry", table="keystrokes", column="agent_id"), None),
]


def snapshot(db: Database) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute("SELECT * FROM telemetry.keystrokes ORDER BY id").fetchall()


def ledger_rows(db: Database) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        if conn.execute("SELECT to_regclass('pausegate.data_actions')").fetchone() == (None,):
            return []
        return conn.execute("SELECT pause_key, action_digest, rows_affected FROM pausegate.data_actions").fetchall()


def wait_until(check: Callable[[], T | None], what: str) -> T:
    """``polled`` from this synchronous test: ``check`` asks the database."""
    async def ask() -> T | None:
        return check()
    return asyncio.run(polled(ask, what=what, every=0.02))


@pytest.mark.parametrize(("action", "last_row"), CASES, ids=[a.kind for a, _ in CASES])
def test_killed_mid_statement_then_rerun_applies_exactly_once(
    database: Database, action: Any, last_row: str | None
) -> None:
    seed_rows(database.dsn, ROWS)
    with database.connect() as conn:
        conn.execute("DROP VIEW analytics.recent_keystrokes")  # it reads columns a drop would remove
    expected = _expected_count(database, action)
    before = snapshot(database)

    blocker = psycopg.connect(database.dsn)
    if last_row is None:
        blocker.execute("LOCK TABLE telemetry.keystrokes IN ACCESS SHARE MODE")
    else:
        row = blocker.execute(last_row).fetchone()
        assert row is not None
        blocker.execute("SELECT 1 FROM telemetry.keystrokes WHERE id = %s FOR UPDATE", (row[0],))
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT), database.dsn, PAUSE, TELEMETRY.model_dump_json(by_alias=True),
         action.model_dump_json()],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        pid = wait_until(lambda: _waiting_backend(database), "the action's statement to wait on the test's lock")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # The server notices the dead client and rolls back: the backend goes, nothing is left applied.
    wait_until(lambda: not _backend_alive(database, pid), "the killed process's backend to end")
    assert snapshot(database) == before
    assert ledger_rows(database) == []

    connector = PostgresDataActions(database.dsn, keys=KEYS)
    result = asyncio.run(connector.apply(PAUSE, TELEMETRY, 0, action))
    again = asyncio.run(connector.apply(PAUSE, TELEMETRY, 0, action))

    assert (result.applied_now, result.rows_affected) == (True, expected)
    assert (again.applied_now, again.rows_affected) == (False, expected)
    assert ledger_rows(database) == [(PAUSE, action_digest(action), expected)]
    check = asyncio.run(connector.verify(PAUSE, TELEMETRY, [action]))
    assert check.ok, check.problems
    if isinstance(action, PseudonymiseColumn):  # pseudonymised once, not twice
        originals = {r[0]: r[5] for r in before}
        with database.connect() as conn:
            now = dict(conn.execute("SELECT id, typed_content FROM telemetry.keystrokes").fetchall())
        assert all(now[i] == (pseudonym(v) if v is not None else None) for i, v in originals.items())


def _expected_count(db: Database, action: Any) -> int:
    with db.connect() as conn:
        if isinstance(action, NullColumn | PseudonymiseColumn):
            row = conn.execute("SELECT count(typed_content) FROM telemetry.keystrokes").fetchone()
        elif isinstance(action, PurgeOlderThan):
            row = conn.execute(
                "SELECT count(*) FROM telemetry.keystrokes WHERE captured_at < %s", (action.cutoff,)
            ).fetchone()
        elif isinstance(action, PurgeSubjects):
            row = conn.execute(
                "SELECT count(*) FROM telemetry.keystrokes WHERE employee = ANY(%s)", (action.subjects,)
            ).fetchone()
        else:
            row = conn.execute("SELECT count(agent_id) FROM telemetry.keystrokes").fetchone()
    assert row is not None
    return int(row[0])


def _waiting_backend(db: Database) -> int | None:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock' AND backend_type = 'client backend'"
        ).fetchone()
    return int(row[0]) if row else None


def _backend_alive(db: Database, pid: int) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (1,)
