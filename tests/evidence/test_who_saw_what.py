"""Who saw what against a real PostgreSQL and its real log: reads through views, materialized views and
SECURITY DEFINER routines in other schemas, by quoted and Unicode-escaped names and through search_path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from pausegate.analysis.pglog_lines import original_line
from pausegate.analysis.who_saw_what import DatasetPaths, WhoSawWhat, WhoSawWhatBuilder, read_scope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.embedded.postgres import dsn_as
from pausegate.models.runbook import DatasetSpec

from .conftest import World

# who runs what: each reader reaches the keystrokes by another path
READS: dict[str, tuple[str, ...]] = {
    "employee_0001": ("SELECT count(*) FROM TELEMETRY.Keystrokes",),
    "employee_0002": ('SELECT * FROM U&"analytics".U&"recent\\005fkeystrokes"',),
    "employee_0003": ('SELECT * FROM reports."Keystroke Stats"',),
    "employee_0004": ("SET search_path TO reports, public", "SELECT * FROM peek_keys('employee_0001')"),
    "employee_0005": ("SET search_path = analytics", "SELECT count(*) FROM recent_keystrokes"),
    # names the data, reads none of it: a string, and a temporary table of the same name
    "employee_0006": ("SELECT 'telemetry.keystrokes'", "CREATE TEMP TABLE recent_keystrokes (x int)",
                      "SELECT * FROM recent_keystrokes"),
    "employee_0007": ("DO $$ BEGIN PERFORM count(*) FROM telemetry.keystrokes; END $$",),
}


def run_as(dsn: str, role: str, *statements: str) -> None:
    with psycopg.connect(dsn_as(dsn, role), autocommit=True) as conn:
        for statement in statements:
            try:
                conn.execute(statement)  # type: ignore[arg-type]
            except psycopg.errors.InsufficientPrivilege:
                pass  # refused: the log says so


async def report_of(world: World, spec: DatasetSpec, start: datetime, end: datetime, *,
                    live: bool) -> tuple[WhoSawWhat, list[dict[str, Any]]]:
    access = PostgresAccess(world.dsn)
    recorded = await access.record_scope(spec)
    paths = DatasetPaths(name=spec.name, schema=spec.schema_name, tables=tuple(spec.tables), recorded=recorded,
                         live=tuple(await access.read_paths(spec)) if live else ())
    scope, who = read_scope([paths])
    # fenced: the logging collector writes asynchronously; the source waits until the log holds all of it
    source = PostgresLogSource(world.log_dir, database=world.database).scoped(scope).fenced(access.log_fence)
    records = [dict(r) async for r in source.records(start, end)]
    builder = WhoSawWhatBuilder(scope, who)
    await builder.add(records)
    return await builder.finish(), records


SPEC = DatasetSpec(name="telemetry", connection="db", schema="telemetry", tables=["keystrokes", "mouse_events"])


@pytest.mark.parametrize("live", [False, True], ids=["recorded-scope", "recorded-and-live"])
async def test_every_reader_is_named_with_the_path_they_took(world: World, live: bool) -> None:
    outsider = world.outsider
    start = datetime.now(UTC)
    for role, statements in READS.items():
        run_as(world.dsn, role, *statements)
    run_as(world.dsn, outsider, "SELECT * FROM telemetry.keystrokes")  # no grant: permission denied
    end = datetime.now(UTC)

    report, records = await report_of(world, SPEC, start, end, live=live)
    paths = {(e.user, e.object, e.path) for e in report.entries if e.reads}
    assert paths == {
        ("employee_0001", "telemetry.keystrokes", "direct"),
        ("employee_0002", "telemetry.keystrokes", "through analytics.recent_keystrokes"),
        ("employee_0003", "telemetry.keystrokes", "through reports.Keystroke Stats"),
        ("employee_0004", "telemetry.keystrokes", "through reports.peek_keys"),
        ("employee_0005", "telemetry.keystrokes", "through analytics.recent_keystrokes"),
        ("employee_0007", "telemetry.keystrokes", "possible (DO block)"),
    }
    assert report.users == [f"employee_000{n}" for n in range(1, 6)]
    assert report.possible_users == ["employee_0007"]  # and nobody else: employee_0006 read nothing
    assert [(e.user, e.reads, e.failed) for e in report.entries if e.failed] == [(outsider, 0, 1)]

    # the evidence is the server's own lines, where it wrote them
    assert records, "nothing sealed"
    for record in records:
        data = (world.log_dir / record["file"]).read_bytes()
        assert original_line(record) == data[record["offset"]:data.index(b"\n", record["offset"])]


async def test_a_whole_schema_dataset_is_read_by_any_name_in_it(world: World) -> None:
    start = datetime.now(UTC)
    run_as(world.dsn, "employee_0001", "SET search_path TO telemetry", "SELECT count(*) FROM keystrokes",
           "SELECT count(*) FROM mouse_events")
    run_as(world.dsn, "employee_0002", "SELECT count(*) FROM analytics.recent_keystrokes")
    run_as(world.dsn, "employee_0003", "SELECT 1")
    end = datetime.now(UTC)
    whole = DatasetSpec(name="telemetry", connection="db", schema="telemetry", tables=[])
    report, _ = await report_of(world, whole, start, end, live=True)
    assert {(e.user, e.object, e.path) for e in report.entries if e.reads} == {
        ("employee_0001", "telemetry.keystrokes", "direct"),
        ("employee_0001", "telemetry.mouse_events", "direct"),
        ("employee_0002", "telemetry.keystrokes", "through analytics.recent_keystrokes"),
    }
    assert all(e.dataset == "telemetry" for e in report.entries)
