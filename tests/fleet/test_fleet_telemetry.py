"""Collecting agents really write to PostgreSQL, and stop the moment their halt is confirmed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg

from pausegate.models.fleet import AgentResultStatus, BatchRequest
from tests.fleet.support import AGENTS, PROGRAM, FleetUnderTest, Postgres, eventually


async def row_counts(dsn: str) -> tuple[int, int]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM telemetry.keystrokes),"
            " (SELECT count(*) FROM telemetry.mouse_events)"
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


async def last_captured(dsn: str, agent_ids: list[str]) -> datetime | None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT max(captured_at) FROM ("
            " SELECT captured_at FROM telemetry.keystrokes WHERE agent_id = ANY(%s)"
            " UNION ALL SELECT captured_at FROM telemetry.mouse_events WHERE agent_id = ANY(%s)) t",
            (agent_ids, agent_ids),
        )
        row = await cur.fetchone()
        return None if row is None else row[0]


async def wait_for_rows(fleet: FleetUnderTest, postgres: Postgres) -> tuple[int, int]:
    start = await row_counts(postgres.admin_dsn)
    await fleet.wait_for_stats(lambda s: s["ticks_written"] >= 2)
    return await eventually(
        lambda: row_counts(postgres.admin_dsn),
        lambda c: c[0] > start[0] and c[1] > start[1],
        10,
        "row counts",
    )


def halt_all(key: str) -> BatchRequest:
    return BatchRequest(agent_ids=AGENTS, incident_id="INC-7", idempotency_key=key)


class TestTelemetry:
    async def test_rows_stop_once_the_halt_is_confirmed(
        self, writing_fleet: FleetUnderTest, postgres: Postgres
    ) -> None:
        fleet = writing_fleet
        await wait_for_rows(fleet, postgres)

        result = await fleet.connector.halt(PROGRAM, halt_all("h-stop"))
        confirmed_at = datetime.now(UTC)
        assert {r.status for r in result.results} == {AgentResultStatus.CONFIRMED}
        at_halt = await row_counts(postgres.admin_dsn)
        stats = await fleet.stats()

        after = await fleet.wait_for_stats(lambda s: s["ticks"] >= stats["ticks"] + 5)
        assert await row_counts(postgres.admin_dsn) == at_halt
        assert after["rows_written"] == stats["rows_written"]
        last = await last_captured(postgres.admin_dsn, AGENTS)
        assert last is not None and last <= confirmed_at

    async def test_a_halt_waits_for_a_write_in_flight_and_that_write_never_lands(
        self, writing_fleet: FleetUnderTest, postgres: Postgres
    ) -> None:
        fleet = writing_fleet
        await wait_for_rows(fleet, postgres)
        async with await psycopg.AsyncConnection.connect(postgres.admin_dsn) as blocker:
            # Holding the table lock parks the next tick's INSERT mid-transaction.
            await blocker.execute("LOCK TABLE telemetry.keystrokes IN EXCLUSIVE MODE")
            held = await row_counts(postgres.admin_dsn)
            await fleet.wait_for_stats(lambda s: s["write_in_flight"])

            halting = asyncio.create_task(fleet.connector.halt(PROGRAM, halt_all("h-race")))
            done, _ = await asyncio.wait({halting}, timeout=0.3)
            assert not done, "the halt was confirmed while a write of its agents could still commit"
            await blocker.rollback()

        result = await halting
        assert {r.status for r in result.results} == {AgentResultStatus.CONFIRMED}
        stats = await fleet.stats()
        assert stats["ticks_discarded"] >= 1
        await fleet.wait_for_stats(lambda s: s["ticks"] >= stats["ticks"] + 3)
        assert await row_counts(postgres.admin_dsn) == held

    async def test_failed_writes_are_counted_and_collection_carries_on(
        self, writing_fleet: FleetUnderTest, postgres: Postgres
    ) -> None:
        fleet = writing_fleet
        await wait_for_rows(fleet, postgres)
        async with await psycopg.AsyncConnection.connect(postgres.admin_dsn, autocommit=True) as admin:
            await admin.execute("REVOKE INSERT ON telemetry.keystrokes FROM telemetry_ingest")
            try:
                failing = await fleet.wait_for_stats(lambda s: s["failed_writes"] >= 3)
                frozen = await row_counts(postgres.admin_dsn)
            finally:
                await admin.execute("GRANT INSERT ON telemetry.keystrokes TO telemetry_ingest")
        resumed = await fleet.wait_for_stats(lambda s: s["rows_written"] > failing["rows_written"])
        assert resumed["ticks"] > failing["ticks"]
        assert (await row_counts(postgres.admin_dsn))[0] > frozen[0]
