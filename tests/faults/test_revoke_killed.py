"""The urgent worker killed with SIGKILL in the middle of a revoke of a few thousand roles: the revoke's
transaction leaves no partial state (every role keeps its access until a revoke commits whole), and the
retry revokes all of it.

Held mid-way deterministically: the test locks the second table (ACCESS EXCLUSIVE) before the pause, so
the revoke's transaction has revoked what it could on the first table when it waits; the worker process
(both workers, the urgent one among them) is killed while its backend waits. The server never sees a
COMMIT from it: when the lock goes, the orphaned transaction runs on, finds its client gone and rolls back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pausegate.models.phase import Phase
from pausegate.models.state import Tuning
from tests.faults.support import WorkerProcess, fleet_effects
from tests.support.fault_report import record_result
from tests.support.harness import Harness, HarnessFactory
from tests.support.polling import polled

ROLES = 2000
FIRST, SECOND = "keystrokes", "mouse_events"
TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=1.5,
                workflow_task_timeout_seconds=2.0)


def create_roles(h: Harness, prefix: str) -> list[str]:
    roles = [f"{prefix}_{i:04d}" for i in range(ROLES)]
    with psycopg.connect(h.database_dsn, autocommit=True) as conn, conn.transaction():
        for role in roles:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA telemetry TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, roles))))
        conn.execute(sql.SQL("GRANT SELECT ON telemetry.{}, telemetry.{} TO {}").format(
            sql.Identifier(FIRST), sql.Identifier(SECOND), sql.SQL(", ").join(map(sql.Identifier, roles))))
    return roles


def drop_roles(h: Harness, roles: list[str]) -> None:
    with psycopg.connect(h.database_dsn, autocommit=True) as conn, conn.transaction():
        names = sql.SQL(", ").join(map(sql.Identifier, roles))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(names))
        conn.execute(sql.SQL("DROP ROLE {}").format(names))


def readers(h: Harness, prefix: str, table: str) -> int:
    """Roles of ``prefix`` that may still SELECT ``table``, asked of the database."""
    with psycopg.connect(h.database_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s "
                           "AND has_table_privilege(oid, %s, 'SELECT')",
                           (f"{prefix}\\_%", f"telemetry.{table}")).fetchone()
    assert row is not None
    return int(row[0])


def waiting_on(h: Harness, table: str) -> list[int]:
    """Backends waiting in a REVOKE for a lock on ``table`` (the revoke's, held mid-way; the fleet's
    writer waits on it too)."""
    with psycopg.connect(h.database_dsn) as conn:
        rows = conn.execute("SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted "
                            "AND l.relation = %s::regclass AND a.query ILIKE 'REVOKE%%'",
                            (f"telemetry.{table}",)).fetchall()
    return [int(r[0]) for r in rows]


def logged_revokes(pglog: Path, pids: list[int], table: str) -> int:
    """REVOKE statements naming ``table`` that the backends ``pids`` ran (PostgreSQL logs every statement as
    it runs, committed or not)."""
    n = 0
    for path in sorted(pglog.glob("*.json")):
        for raw in path.read_bytes().splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            message = str(entry.get("message", ""))
            if entry.get("pid") in pids and "REVOKE" in message.upper() and table in message:
                n += 1
    return n


def alive(h: Harness, pids: list[int]) -> bool:
    with psycopg.connect(h.database_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()
    return bool(row and row[0])


async def poll(check: Callable[[], bool], what: str) -> None:
    """``check`` asks the database, so it runs off the event loop."""
    await polled(lambda: asyncio.to_thread(check), what=what)


@pytest.mark.slow
async def test_a_revoke_of_thousands_of_roles_killed_mid_way_leaves_nothing_partial_and_completes(
    make_harness: HarnessFactory, temporal_address: str, tmp_path: Path, pglog: Path
) -> None:
    prefix = f"bulk_{uuid.uuid4().hex[:6]}"
    async with make_harness(run_worker=False, agents=10, tuning=TUNING) as h:
        roles = await asyncio.to_thread(create_roles, h, prefix)
        try:
            assert readers(h, prefix, FIRST) == readers(h, prefix, SECOND) == ROLES
            worker = WorkerProcess(h, temporal_address, tmp_path / "worker")
            lock = await psycopg.AsyncConnection.connect(h.database_dsn)
            await lock.execute(f"LOCK TABLE telemetry.{SECOND} IN ACCESS EXCLUSIVE MODE")
            try:
                await worker.start()
                await h.pause()
                await poll(lambda: bool(waiting_on(h, SECOND)), "the revoke to wait on the second table")
                held = waiting_on(h, SECOND)
                worker.kill()
                # Mid-way indeed: before it waited, the killed revoke had revoked on the first table.
                await poll(lambda: logged_revokes(pglog, held, FIRST) > 0, "the first table's REVOKEs in the log")
                done_before = logged_revokes(pglog, held, FIRST)
            finally:
                await lock.rollback()
                await lock.close()
            # The orphaned transaction runs on without its client and rolls back: nothing of it stays.
            await poll(lambda: not alive(h, held), "the killed worker's transaction to end")
            assert readers(h, prefix, FIRST) == ROLES, "a part of the killed revoke stayed"
            assert readers(h, prefix, SECOND) == ROLES

            await worker.start()
            try:
                status = await h.wait_for_state(Phase.UNDER_REVIEW, timeout=120)
            finally:
                worker.stop()
            assert status.containment.access_revoked
            assert readers(h, prefix, FIRST) == readers(h, prefix, SECOND) == 0
            assert fleet_effects(h).switch_changes == 1
            record_result("urgent worker SIGKILL mid-revoke", f"{ROLES} roles, killed while the revoke's "
                          "transaction waited half-way", injected=1, revokes_rolled_back=done_before,
                          outcome=f"nothing committed by the killed revoke ({ROLES} roles kept access); the retry "
                                  f"revoked all {ROLES}")
        finally:
            await asyncio.to_thread(drop_roles, h, roles)
