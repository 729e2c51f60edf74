"""Copies of leaked rows made in the window on a real PostgreSQL: each kind found in the server's own
log (or its catalog), contained, and checked by real reads as every role."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from datetime import UTC, datetime

import psycopg
import pytest

from pausegate.analysis.copies import find_copies
from pausegate.analysis.who_saw_what import DatasetPaths, read_scope
from pausegate.connectors.postgres.catalog import load_read_paths
from pausegate.connectors.postgres.copies_catalog import QUARANTINE_ROLE, QUARANTINE_SCHEMA, find_by_fingerprint
from pausegate.connectors.postgres.quarantine import contain, verify_relation
from pausegate.models.copies import Copy, CopyContainment, CopyKind
from pausegate.models.runbook import DatasetSpec
from tests.support.copies_world import TABLE, World
from tests.support.debian_pg import BIN

pytestmark = pytest.mark.skipif(not (BIN / "postgres").exists(), reason="postgresql-15 is not installed")


async def _contain(tool: psycopg.AsyncConnection[tuple[object, ...]], world: World, copy: Copy) -> CopyContainment:
    return await contain(tool, copy, dataset_tables=[TABLE], break_glass=[world.break_glass])


def _only(copies: list[Copy], kind: CopyKind) -> Copy:
    found = [c for c in copies if c.kind == kind]
    assert len(found) == 1, [(c.kind, c.name, c.state) for c in copies]
    return found[0]


def _assert_sealed_off(world: World, done: CopyContainment, copier: str) -> None:
    """No login role but break-glass reads the copy, by real reads; the copier cannot re-grant it."""
    assert done.verified, done.residual
    assert done.contained.state == "quarantined"
    where = done.contained.quarantined_as
    assert where is not None and where.startswith(QUARANTINE_SCHEMA + ".")
    for role in world.login_roles():
        assert world.read(role, where) is None, role
    assert world.read("bg", where) == done.contained.rows
    old = done.contained.qualified
    assert old is not None and world.read(copier, old) is None
    with world.connect(copier) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        schema, name = where.split(".")
        conn.execute(f'GRANT SELECT ON "{schema}"."{name}" TO PUBLIC')  # type: ignore[arg-type]
    assert world.read("bystander", where) is None


class TestCopiesInRelations:
    async def test_create_table_as_is_found_and_quarantined(self, world: World, tool: psycopg.AsyncConnection) -> None:
        """A CREATE TABLE AS shared with everyone: found with its creator, then read by nobody but break-glass."""
        world.run("alice", "CREATE TABLE {alice}.copy AS SELECT * FROM data.keystrokes",
                  "GRANT SELECT ON {alice}.copy TO PUBLIC")
        assert world.read("bystander", world.role("alice") + ".copy") == world.rows
        found = (await world.find()).copies
        copy = _only(found, CopyKind.CREATE_TABLE_AS)
        assert (copy.schema_name, copy.name, copy.creator) == (world.role("alice"), "copy", world.role("alice"))
        assert copy.sources == (TABLE,) and copy.datasets == ("keystrokes",)
        done = await _contain(tool, world, copy)
        assert done.contained.rows == world.rows
        _assert_sealed_off(world, done, "alice")
        again = await _contain(tool, world, done.contained)
        assert again.verified and again.contained.quarantined_as == done.contained.quarantined_as

    async def test_select_into_an_unqualified_name_lands_in_the_users_schema(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """SELECT INTO a bare name: the candidates follow the search_path; the catalog tells which exists."""
        world.run("bob", "SELECT * INTO bobcopy FROM data.keystrokes", "GRANT SELECT ON bobcopy TO PUBLIC")
        copy = _only((await world.find()).copies, CopyKind.SELECT_INTO)
        assert copy.name == "bobcopy" and f"{world.role('bob')}.bobcopy" in copy.candidates
        done = await _contain(tool, world, copy)
        assert done.contained.schema_name == world.role("bob")
        _assert_sealed_off(world, done, "bob")

    async def test_insert_select_into_an_existing_table(self, world: World, tool: psycopg.AsyncConnection) -> None:
        """Rows inserted into a table that existed before: the table is a copy."""
        world.run("carol", "CREATE TABLE {carol}.notes (id int, employee text, typed text, at timestamptz)",
                  "INSERT INTO {carol}.notes VALUES (0, 'x', 'unrelated', now())",
                  "INSERT INTO {carol}.notes SELECT * FROM data.keystrokes WHERE id <= 100",
                  "GRANT SELECT ON {carol}.notes TO {bystander}")
        copy = _only((await world.find()).copies, CopyKind.INSERT_SELECT)
        done = await _contain(tool, world, copy)
        assert done.contained.rows == 101
        _assert_sealed_off(world, done, "carol")

    async def test_materialized_view(self, world: World, tool: psycopg.AsyncConnection) -> None:
        """A materialized view holds the rows it was defined over."""
        world.run("alice", "CREATE MATERIALIZED VIEW {alice}.mv AS SELECT employee, typed FROM data.keystrokes",
                  "GRANT SELECT ON {alice}.mv TO PUBLIC")
        copy = _only((await world.find()).copies, CopyKind.MATERIALIZED_VIEW)
        assert copy.state == "found"
        _assert_sealed_off(world, await _contain(tool, world, copy), "alice")

    async def test_laundering_through_a_temporary_table(self, world: World, tool: psycopg.AsyncConnection) -> None:
        """A temporary table, then INSERT from it into a permanent one: both found; the permanent one is
        quarantined, the temporary one ends with its session."""
        with world.connect("dave") as session:
            session.execute("CREATE TEMP TABLE t AS SELECT * FROM data.keystrokes")
            session.execute(world.sql("CREATE TABLE {dave}.clean (id int, employee text, typed text, at timestamptz)"))
            session.execute(world.sql("INSERT INTO {dave}.clean SELECT * FROM t"))
            session.execute(world.sql("GRANT SELECT ON {dave}.clean TO PUBLIC"))
            found = (await world.find()).copies
            temp = _only(found, CopyKind.TEMPORARY_TABLE)
            clean = _only(found, CopyKind.INSERT_SELECT)
            assert clean.sources == ("pg_temp.t",) and clean.datasets == ("keystrokes",)
            ended = await _contain(tool, world, temp)
            assert ended.verified and ended.contained.state == "gone" and ended.sessions_ended == 1
            with pytest.raises(psycopg.OperationalError):
                session.execute("SELECT count(*) FROM t")
            _assert_sealed_off(world, await _contain(tool, world, clean), "dave")

    async def test_copy_of_a_copy_to_a_fixed_point(self, world: World, tool: psycopg.AsyncConnection) -> None:
        """A copy made from a copy (through a view over it, in another session) is found and contained."""
        world.run("alice", "CREATE TABLE {alice}.first AS SELECT * FROM data.keystrokes",
                  "GRANT SELECT ON {alice}.first TO PUBLIC")
        world.run("erin", "CREATE VIEW {erin}.v AS SELECT * FROM {alice}.first",
                  "CREATE TABLE {erin}.second AS SELECT * FROM {erin}.v", "GRANT SELECT ON {erin}.second TO PUBLIC")
        world.run("frank", "CREATE TABLE {frank}.third AS SELECT typed FROM {erin}.second")
        found = (await world.find()).copies
        by_name = {c.name: c for c in found}
        assert set(by_name) == {"first", "second", "third"}
        assert by_name["second"].sources == (f"{world.role('alice')}.first",)
        assert by_name["second"].via == f"{world.role('erin')}.v"
        assert by_name["third"].datasets == ("keystrokes",)
        for name, copier in (("first", "alice"), ("second", "erin"), ("third", "frank")):
            _assert_sealed_off(world, await _contain(tool, world, by_name[name]), copier)

    async def test_unrelated_table_made_in_the_window_is_not_listed(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """Negative control: neither the log nor the fingerprint lists a table made from other data."""
        world.run("alice", "CREATE TABLE {alice}.unrelated AS SELECT g AS id, md5(g::text) AS typed "
                           "FROM generate_series(1, 200) g")
        with world.connect("alice") as conn, pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute(world.sql("CREATE TABLE {alice}.failed AS SELECT * FROM data.keystrokes WHERE 1/0 = 1"))
        assert (await world.find()).copies == []
        assert await find_by_fingerprint(tool, [TABLE]) == []


class TestCopiesThatLeft:
    async def test_copy_to_a_server_file_is_read_back_and_hashed(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """COPY TO a file on the server: read back through the database and hashed."""
        path = world.cluster.files_dir / f"{world.database}.csv"
        world.run(None, "GRANT pg_write_server_files TO {erin}")
        world.run("erin", f"COPY data.keystrokes TO '{path}'")
        copy = _only((await world.find()).copies, CopyKind.COPY_TO_FILE)
        assert copy.destination == str(path) and copy.creator == world.role("erin")
        done = await _contain(tool, world, copy)
        assert done.contained.state == "server_file"
        assert done.contained.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert done.contained.file_bytes == path.stat().st_size

    async def test_a_server_file_this_role_cannot_read_left_the_database(self, world: World) -> None:
        """Without the right to read server files, the file is listed as left the database."""
        path = world.cluster.files_dir / f"{world.database}-2.csv"
        world.run(None, "GRANT pg_write_server_files TO {erin}")
        world.run("erin", f"COPY (SELECT typed FROM data.keystrokes) TO '{path}'")
        copy = _only((await world.find()).copies, CopyKind.COPY_TO_FILE)
        async with await psycopg.AsyncConnection.connect(world.cluster.dsn(world.database, world.role("owner")),
                                                         autocommit=True) as weak:
            done = await contain(weak, copy)
        assert done.contained.state == "left_database" and done.contained.file_sha256 is None

    async def test_copy_to_stdout_and_pg_dump_left_the_database(self, world: World) -> None:
        """COPY TO STDOUT and a real pg_dump: listed as left the database, with who, from where, which tool."""
        with world.connect("frank", application_name="export-script") as conn, conn.cursor() as cur:
            with cur.copy("COPY data.keystrokes TO STDOUT") as out:
                assert sum(len(block) for block in out) > 0
        await asyncio.to_thread(subprocess.run, [str(BIN / "pg_dump"), "-t", TABLE, "-f", "/dev/null",
                                world.cluster.dsn(world.database, world.role("gina"))], check=True, capture_output=True)
        found = (await world.find()).copies
        streamed = _only(found, CopyKind.COPY_TO_CLIENT)
        dumped = _only(found, CopyKind.CLIENT_DUMP)
        assert (streamed.state, streamed.creator, streamed.application) == (
            "left_database", world.role("frank"), "export-script")
        assert (dumped.state, dumped.creator, dumped.application) == ("left_database", world.role("gina"), "pg_dump")
        assert dumped.client == "127.0.0.1" and dumped.datasets == ("keystrokes",)


class TestDynamicCopies:
    async def test_dynamic_sql_is_possible_and_the_fingerprint_finds_the_table(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """A DO block building its SQL: the log says "possible"; the fingerprint names the table it made."""
        world.run("gina", "DO $$ BEGIN EXECUTE format('CREATE TABLE %I.hidden AS SELECT * FROM %I.%I', "
                          "current_user, 'data', reverse('sekortsyek')); END $$")
        world.run("gina", "GRANT SELECT ON {gina}.hidden TO PUBLIC")
        logged = (await world.find()).copies
        dynamic = _only(logged, CopyKind.DYNAMIC)
        assert dynamic.state == "possible" and dynamic.creator == world.role("gina")
        by_fingerprint = await find_by_fingerprint(tool, [TABLE])
        assert [(c.schema_name, c.name) for c in by_fingerprint] == [(world.role("gina"), "hidden")]
        hit = by_fingerprint[0]
        assert hit.confidence is not None and hit.confidence >= 0.9 and hit.rows == world.rows
        _assert_sealed_off(world, await _contain(tool, world, hit), "gina")


class TestThroughWhatExposesTheDataset:
    async def test_copies_read_through_a_view_and_a_routine_are_found(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """The scope comes from the catalog as who-saw-what builds it: a copy made through a view or a
        SECURITY DEFINER routine over the dataset is a copy of the dataset."""
        world.run(None, "CREATE VIEW public.recent AS SELECT employee, typed FROM data.keystrokes",
                  "ALTER VIEW public.recent OWNER TO {owner}", "GRANT SELECT ON public.recent TO PUBLIC",
                  "CREATE FUNCTION public.typed_by(e text) RETURNS SETOF text LANGUAGE sql SECURITY DEFINER "
                  "AS $$ SELECT typed FROM data.keystrokes WHERE employee = e $$",
                  "ALTER FUNCTION public.typed_by(text) OWNER TO {owner}")
        world.started = datetime.now(UTC)
        world.run("alice", "CREATE TABLE {alice}.via_view AS SELECT * FROM recent")
        world.run("bob", "CREATE TABLE {bob}.via_routine AS SELECT typed_by('employee-1') AS typed")
        spec = DatasetSpec(name="keystrokes", connection="db", schema="data", tables=["keystrokes"])
        paths = await load_read_paths(tool, spec)
        scope, who = read_scope([DatasetPaths(name="keystrokes", schema="data", tables=("keystrokes",),
                                              live=tuple(paths))])
        found = find_copies(await world.records(), scope, dataset_of=who.dataset).copies
        assert [(c.name, c.via, c.datasets) for c in found] == [
            ("via_view", "public.recent", ("keystrokes",)), ("via_routine", "public.typed_by", ("keystrokes",))]


class TestTheInsider:
    async def test_three_copies_shared_with_everyone_are_all_contained(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """The issue's insiders: three employees copy keystrokes three ways and share them; a bystander
        reads all three. Afterwards 3 of 3 are found and no one but break-glass reads any."""
        world.run("alice", "CREATE TABLE {alice}.k AS SELECT * FROM data.keystrokes",
                  "GRANT SELECT ON {alice}.k TO PUBLIC")
        world.run("bob", "SELECT * INTO {bob}.k FROM data.keystrokes", "GRANT SELECT ON {bob}.k TO PUBLIC")
        world.run("carol", "CREATE TABLE {carol}.k (LIKE data.keystrokes)",
                  "INSERT INTO {carol}.k SELECT * FROM data.keystrokes", "GRANT SELECT ON {carol}.k TO PUBLIC")
        copies = [(who, f"{world.role(who)}.k") for who in ("alice", "bob", "carol")]
        assert [world.read("bystander", name) for _, name in copies] == [world.rows] * 3
        found = (await world.find()).copies
        assert sorted(c.qualified or "" for c in found) == sorted(name for _, name in copies)
        for copy, (who, _) in zip(found, copies, strict=True):
            _assert_sealed_off(world, await _contain(tool, world, copy), who)

    async def test_a_loosened_quarantine_is_caught_and_closed_again(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """Someone grants the quarantine schema to PUBLIC and the quarantine role to the copier: verification
        fails, and containing again takes both back."""
        world.run("alice", "CREATE TABLE {alice}.k AS SELECT * FROM data.keystrokes")
        (copy,) = (await world.find()).copies
        done = await _contain(tool, world, copy)
        assert done.verified
        world.run(None, f"GRANT USAGE ON SCHEMA {QUARANTINE_SCHEMA} TO PUBLIC",
                  f"GRANT {QUARANTINE_ROLE} TO {{alice}}")
        assert world.read("alice", done.contained.quarantined_as or "") == world.rows
        residual, verified = await verify_relation(tool, done.contained, [world.break_glass])
        assert not verified
        still = [(r.role, r.why) for r in residual if r.why != "superuser"]
        assert still == [(world.role("alice"), "SELECT on the copy")]
        again = await _contain(tool, world, done.contained)
        _assert_sealed_off(world, again, "alice")
        with world.connect("alice") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"ALTER TABLE {again.contained.quarantined_as} OWNER TO {world.role('alice')}")  # type: ignore[arg-type]


class TestPartitionedCopies:
    async def test_a_partitioned_copy_is_quarantined_with_its_partitions(
            self, world: World, tool: psycopg.AsyncConnection) -> None:
        """The rows of a partitioned copy live in its partitions: they move too, and nobody reads them directly."""
        world.run("alice", "CREATE TABLE {alice}.parts (LIKE data.keystrokes) PARTITION BY RANGE (id)",
                  "CREATE TABLE {alice}.low PARTITION OF {alice}.parts FOR VALUES FROM (0) TO (150)",
                  "CREATE TABLE {alice}.high PARTITION OF {alice}.parts FOR VALUES FROM (150) TO (MAXVALUE)",
                  "INSERT INTO {alice}.parts SELECT * FROM data.keystrokes",
                  "GRANT SELECT ON {alice}.parts, {alice}.low, {alice}.high TO PUBLIC")
        (copy,) = (await world.find()).copies
        done = await _contain(tool, world, copy)
        _assert_sealed_off(world, done, "alice")
        assert done.contained.rows == world.rows
        for part in ("low", "high"):
            assert world.read("bystander", f"{world.role('alice')}.{part}") is None
        with world.connect() as conn:
            moved = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = %s AND c.relowner = %s::regrole",
                                 (QUARANTINE_SCHEMA, QUARANTINE_ROLE)).fetchone()
        assert moved is not None and moved[0] >= 3
