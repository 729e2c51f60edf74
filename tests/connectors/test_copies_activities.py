"""The copies activities on a real PostgreSQL: the log's copies resolved in the catalog (where an unqualified
name landed, how many rows), the catalog's own finds added, then each contained."""

from __future__ import annotations

import pytest
from temporalio.testing import ActivityEnvironment

from activities.copies import CopiesActivities
from pausegate.models.copies import ContainCopiesInput, CopyKind, FindCatalogCopiesInput
from tests.support.copies_world import TABLE, World
from tests.support.debian_pg import BIN

pytestmark = pytest.mark.skipif(not (BIN / "postgres").exists(), reason="postgresql-15 is not installed")


class TestCopiesActivities:
    async def test_find_in_the_catalog_then_contain_every_copy(self, world: World) -> None:
        """An unqualified copy resolved to its schema with its rows; an export's rows taken from the table it
        sent whole; a copy the log cannot name added by fingerprint; then all contained and verified."""
        world.run("alice", "CREATE TABLE k AS SELECT * FROM data.keystrokes")
        with world.connect("frank") as conn, conn.cursor() as cur, cur.copy("COPY data.keystrokes TO STDOUT") as out:
            for _block in out:
                pass
        world.run("gina", "DO $$ BEGIN EXECUTE 'CREATE TABLE hidden AS SELECT * FROM data.' || "
                          "reverse('sekortsyek'); END $$")
        logged = (await world.find()).copies
        acts = CopiesActivities(lambda name: {"db": world.dsn}[name])
        env = ActivityEnvironment()
        found = await env.run(acts.find_catalog_copies, FindCatalogCopiesInput(
            pause_key="p", connection="db", schema_name="data", tables=("keystrokes",), copies=tuple(logged)))
        by_kind = {c.kind: c for c in found.copies}
        table = by_kind[CopyKind.CREATE_TABLE_AS]
        assert (table.schema_name, table.name, table.rows, table.rows_basis) == (
            world.role("alice"), "k", world.rows, "counted")
        export = by_kind[CopyKind.COPY_TO_CLIENT]
        assert (export.whole_source, export.rows, export.rows_basis) == (TABLE, world.rows, "source_now")
        assert by_kind[CopyKind.DYNAMIC].state == "possible"
        fingerprinted = by_kind[CopyKind.FINGERPRINT]
        assert (fingerprinted.schema_name, fingerprinted.name) == (world.role("gina"), "hidden")
        assert len(found.copies) == 4  # the log's copy is not found again by its fingerprint

        done = await env.run(acts.contain_copies, ContainCopiesInput(
            pause_key="p", connection="db", copies=tuple(found.copies), dataset_tables=(TABLE,),
            break_glass_roles=(world.break_glass,)))
        assert all(d.verified for d in done)
        assert sorted(d.contained.state for d in done) == ["left_database", "possible", "quarantined", "quarantined"]
        for d in done:
            if d.contained.quarantined_as:
                assert world.read("bystander", d.contained.quarantined_as) is None
                assert world.read("bg", d.contained.quarantined_as) == world.rows
