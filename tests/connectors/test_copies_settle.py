"""What the resume plan decided for a quarantined copy, done on a real PostgreSQL and checked there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
import pytest_asyncio

from pausegate.connectors.postgres.copies_settle import drop_copy, keep_copy, purge_copy
from pausegate.connectors.postgres.quarantine import contain
from pausegate.models.copies import Copy
from pausegate.models.data_actions import PurgeOlderThan, PurgeSubjects
from tests.support.copies_world import World
from tests.support.debian_pg import BIN

pytestmark = pytest.mark.skipif(not (BIN / "postgres").exists(), reason="postgresql-15 is not installed")


@pytest_asyncio.fixture
async def quarantined(world: World) -> AsyncIterator[tuple[psycopg.AsyncConnection[tuple[object, ...]], Copy]]:
    world.run("alice", "CREATE TABLE k AS SELECT * FROM data.keystrokes", "GRANT SELECT ON k TO PUBLIC")
    [copy] = (await world.find()).copies
    async with await psycopg.AsyncConnection.connect(world.dsn, autocommit=True) as conn:
        done = await contain(conn, copy, break_glass=(world.break_glass,))
        assert done.verified and done.contained.quarantined_as is not None
        yield conn, done.contained


class TestSettle:
    async def test_purge_deletes_the_rows_the_rule_selects_and_nothing_else(
            self, world: World, quarantined: tuple[psycopg.AsyncConnection[tuple[object, ...]], Copy]) -> None:
        conn, copy = quarantined
        assert copy.quarantined_as is not None
        purge = PurgeSubjects(dataset="keystrokes", table="keystrokes", subject_column="employee",
                              subjects=["employee-1", "employee-2"])
        settled = await purge_copy(conn, copy, purge)
        assert settled.verified and settled.rows_deleted == sum(1 for g in range(1, world.rows + 1) if g % 40 in (1, 2))
        assert world.read("bg", copy.quarantined_as) == world.rows - settled.rows_deleted
        again = await purge_copy(conn, copy, purge)
        assert again.verified and again.rows_deleted == 0
        older = PurgeOlderThan(dataset="keystrokes", table="keystrokes", column="at",
                               cutoff=datetime(2027, 1, 1, tzinfo=UTC))
        assert (await purge_copy(conn, copy, older)).verified
        assert world.read("bg", copy.quarantined_as) == 0

    async def test_keep_checks_the_quarantine_and_drop_leaves_nothing(
            self, world: World, quarantined: tuple[psycopg.AsyncConnection[tuple[object, ...]], Copy]) -> None:
        conn, copy = quarantined
        assert copy.quarantined_as is not None
        assert (await keep_copy(conn, copy, (world.break_glass,))).verified
        world.run(None, f"GRANT SELECT ON {copy.quarantined_as} TO {world.role('bystander')}")
        assert not (await keep_copy(conn, copy, (world.break_glass,))).verified  # loosened: no longer kept
        dropped = await drop_copy(conn, copy)
        assert dropped.verified and world.read("bg", copy.quarantined_as) is None
        assert (await drop_copy(conn, copy)).verified  # again: nothing left to drop
