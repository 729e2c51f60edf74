"""Copies that reach a second cluster: a publication with a subscriber, and a postgres_fdw foreign table
pointing at the dataset. Found from the catalogs, contained, checked by what really reaches the other side."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pausegate.connectors.postgres.copies_catalog import (
    DatasetLocation,
    find_foreign_tables,
    find_publications,
    find_subscribed_tables,
)
from pausegate.connectors.postgres.quarantine import contain
from pausegate.models.copies import CopyKind
from tests.support.copies_world import TABLE, World, make_world
from tests.support.debian_pg import BIN, Cluster, running_cluster

pytestmark = pytest.mark.skipif(not (BIN / "postgres").exists(), reason="postgresql-15 is not installed")
POLLS = 600  # 0.1 s apart: a minute before a test that would hang fails instead


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[Cluster, Cluster]]:
    with running_cluster("publisher") as a, running_cluster("elsewhere") as b:
        yield a, b


@pytest.fixture
def world(clusters: tuple[Cluster, Cluster]) -> Iterator[World]:
    w = make_world(clusters[0])
    yield w
    clusters[0].drop_database(w.database)


async def _until(check: str, conn: psycopg.Connection[tuple[object, ...]], expected: object) -> None:
    """Polls the subscriber until it shows ``expected`` (replication reports nothing when it applies)."""
    row = None
    for _ in range(POLLS):  # a bound against hanging, not a limit on how fast replication is
        row = conn.execute(check).fetchone()  # type: ignore[arg-type]
        if row is not None and row[0] == expected:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{check} never gave {expected!r} in {POLLS} polls (last: {row})")


class TestPublication:
    async def test_a_row_inserted_after_containment_does_not_reach_the_subscriber(
            self, world: World, tool: psycopg.AsyncConnection, clusters: tuple[Cluster, Cluster]) -> None:
        """A publication carrying the dataset: found with its replication connection; contained, the
        subscriber gets later rows of other tables but no more of the dataset's."""
        _, elsewhere = clusters
        world.run(None, "CREATE TABLE data.marker (id int PRIMARY KEY)",
                  "CREATE PUBLICATION leak FOR TABLE data.keystrokes, data.marker")
        replica = f"r_{world.database}"
        elsewhere.create_database(replica)
        try:
            with elsewhere.connect(replica) as sub:
                sub.execute("CREATE SCHEMA data")
                sub.execute("CREATE TABLE data.keystrokes "
                            "(id int PRIMARY KEY, employee text, typed text, at timestamptz)")
                sub.execute("CREATE TABLE data.marker (id int PRIMARY KEY)")
                sub.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION leak").format(
                    sql.Identifier(f"s_{world.database}"),
                    sql.Literal(f"host=127.0.0.1 port={world.cluster.port} dbname={world.database} user=postgres")))
                await _until("SELECT count(*) FROM data.keystrokes", sub, world.rows)
                await _until("SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL", sub, 1)

                copies = await find_publications(tool, [TABLE])
                assert [(c.kind, c.name) for c in copies] == [(CopyKind.PUBLICATION, "leak")]
                assert "read by postgres from 127.0.0.1" in (copies[0].destination or "")
                done = await contain(tool, copies[0], dataset_tables=[TABLE])
                assert done.verified and done.replication_connections_ended >= 1
                assert done.contained.state == "left_database"
                assert await find_publications(tool, [TABLE]) == []

                world.run("owner", "INSERT INTO data.keystrokes "
                                   "VALUES (100000, 'late', 'typed after containment', now())")
                world.run(None, "INSERT INTO data.marker VALUES (1)")
                await _until("SELECT count(*) FROM data.marker", sub, 1)
                row = sub.execute("SELECT count(*) FROM data.keystrokes WHERE id = 100000").fetchone()
                assert row == (0,)
                again = await contain(tool, done.contained, dataset_tables=[TABLE])
                assert again.verified and again.statements == []

                # what the subscriber already received is a copy on that server: quarantined there
                location = DatasetLocation(hosts=frozenset({"127.0.0.1"}), port=world.cluster.port,
                                           dbname=world.database)
                sub.execute("CREATE ROLE " + world.role("analyst") + " LOGIN")
                sub.execute("GRANT USAGE ON SCHEMA data TO PUBLIC")
                sub.execute("GRANT SELECT ON data.keystrokes TO PUBLIC")
                async with await psycopg.AsyncConnection.connect(elsewhere.dsn(replica), autocommit=True) as remote:
                    received = await find_subscribed_tables(remote, server="replica", location=location,
                                                            publications=["leak"])
                    assert sorted((c.kind, c.schema_name, c.name) for c in received) == [
                        (CopyKind.SUBSCRIBED_TABLE, "data", "keystrokes"),
                        (CopyKind.SUBSCRIBED_TABLE, "data", "marker")]
                    kept = next(c for c in received if c.name == "keystrokes")
                    held = await contain(remote, kept)
                assert held.verified and held.contained.rows == world.rows
                with psycopg.connect(elsewhere.dsn(replica, world.role("analyst")), autocommit=True) as analyst:
                    for relation in ("data.keystrokes", held.contained.quarantined_as or ""):
                        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable)):
                            analyst.execute(f"SELECT count(*) FROM {relation}")  # type: ignore[arg-type]
                sub.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(f"s_{world.database}")))
        finally:
            elsewhere.drop_database(replica)


class TestForeignTable:
    async def test_a_query_through_the_foreign_table_fails_after_containment(
            self, world: World, clusters: tuple[Cluster, Cluster]) -> None:
        """A postgres_fdw foreign table on another server reading the dataset: found on that server,
        quarantined there; its reader and its creator no longer get rows through it."""
        _, elsewhere = clusters
        remote_db = f"f_{world.database}"
        elsewhere.create_database(remote_db)
        reader, maker, bg = (f"{world.prefix}{n}" for n in ("analyst", "maker", "bg"))
        try:
            with elsewhere.connect(remote_db) as conn:
                for role in (reader, maker, bg):
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
                conn.execute("CREATE EXTENSION postgres_fdw")
                conn.execute(sql.SQL("CREATE SERVER ds FOREIGN DATA WRAPPER postgres_fdw OPTIONS "
                                     "(host '127.0.0.1', port {}, dbname {})").format(
                    sql.Literal(str(world.cluster.port)), sql.Literal(world.database)))
                conn.execute(sql.SQL("CREATE USER MAPPING FOR PUBLIC SERVER ds OPTIONS (user {}, "
                                     "password_required 'false')").format(sql.Literal(world.role("bystander"))))
                conn.execute(sql.SQL("CREATE SCHEMA mirror AUTHORIZATION {}").format(sql.Identifier(maker)))
                conn.execute("GRANT USAGE ON SCHEMA mirror TO PUBLIC")
                conn.execute("GRANT USAGE ON FOREIGN SERVER ds TO PUBLIC")
            with psycopg.connect(elsewhere.dsn(remote_db, maker), autocommit=True) as conn:
                conn.execute("CREATE FOREIGN TABLE mirror.k (id int, employee text, typed text, at timestamptz) "
                             "SERVER ds OPTIONS (schema_name 'data', table_name 'keystrokes')")
                conn.execute("GRANT SELECT ON mirror.k TO PUBLIC")

            def rows_as(role: str, relation: str) -> int | None:
                with psycopg.connect(elsewhere.dsn(remote_db, role), autocommit=True) as c:
                    try:
                        return int(c.execute(f"SELECT count(*) FROM {relation}").fetchone()[0])  # type: ignore[index, arg-type]
                    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable):
                        return None

            assert rows_as(reader, "mirror.k") == world.rows
            location = DatasetLocation(hosts=frozenset({"127.0.0.1", "db.internal"}), port=world.cluster.port,
                                       dbname=world.database)
            async with await psycopg.AsyncConnection.connect(elsewhere.dsn(remote_db), autocommit=True) as remote:
                found = await find_foreign_tables(remote, server="analytics", location=location, tables=[TABLE])
                assert [(c.kind, c.schema_name, c.name, c.creator) for c in found] == [
                    (CopyKind.FOREIGN_TABLE, "mirror", "k", maker)]
                done = await contain(remote, found[0], break_glass=[bg])
            assert done.verified and done.contained.state == "quarantined"
            moved = done.contained.quarantined_as
            assert moved is not None
            for role in (reader, maker):
                assert rows_as(role, "mirror.k") is None
                assert rows_as(role, moved) is None
            assert rows_as(bg, moved) == world.rows
        finally:
            elsewhere.drop_database(remote_db)
