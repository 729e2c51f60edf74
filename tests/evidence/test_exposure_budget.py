"""The exposure step under a flood of distinct statements: its work is bounded by a budget, and a
retry goes on from the last checkpoint instead of from the first line. Against a real PostgreSQL's
log; work is counted (statements analysed), never timed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pausegate.analysis.who_saw_what as who_saw_what_module
from pausegate.analysis.exposure import (
    Exposure,
    build_who_saw_what,
    checkpoint_detail,
    recorded_checkpoint,
)
from pausegate.analysis.who_saw_what import DatasetPaths, WhoSawWhat, read_scope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.embedded.postgres import dsn_as
from pausegate.evidence.layout import exposure_checkpoint_key
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.models.evidence import EvidenceRef

from .conftest import World, aiter_of, new_store
from .test_who_saw_what import SPEC

FLOOD = 1200  # distinct statements, each naming the data: every one must be parsed to be understood
PAUSE = "employee-telemetry/20261207T1700Z-flood"


class Crash(Exception):
    """The attempt dies here (the worker lost, the activity timed out)."""


def flood(world: World) -> tuple[datetime, datetime]:
    """employee_0001 floods the log with distinct statements; employee_0002 then reads the data once."""
    start = datetime.now(UTC)
    with psycopg.connect(dsn_as(world.dsn, "employee_0001"), autocommit=True) as conn:
        for n in range(FLOOD):
            conn.execute(f"SELECT count(*) FROM telemetry.keystrokes WHERE key_code = {n}")  # type: ignore[arg-type]
    with psycopg.connect(dsn_as(world.dsn, "employee_0002"), autocommit=True) as conn:
        conn.execute("SELECT typed_content FROM telemetry.keystrokes")
    return start, datetime.now(UTC)


async def sealed_flood(world: World, store: LocalEvidenceStore) -> list[str]:
    access = PostgresAccess(world.dsn)
    start, end = flood(world)
    scope, _ = read_scope([DatasetPaths(name=SPEC.name, schema=SPEC.schema_name, tables=tuple(SPEC.tables))])
    source = PostgresLogSource(world.log_dir, database=world.database).scoped(scope).fenced(access.log_fence)
    records = [dict(r) async for r in source.records(start, end)]
    ref, _ = await store.seal(f"{PAUSE}/audit/db/0", aiter_of(records))
    return [ref.key]


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many statements the parser was handed, call by call (the work that the budget bounds)."""
    calls: list[int] = []
    real = who_saw_what_module.analyse_each_off_loop

    async def counting(items: Iterable[Any], scope: Any, **kwargs: Any) -> Any:
        items = list(items)
        calls.append(len(items))
        return await real(items, scope, **kwargs)

    monkeypatch.setattr(who_saw_what_module, "analyse_each_off_loop", counting)
    return calls


async def test_a_flood_of_distinct_statements_spends_the_budget_and_is_counted_not_guessed(
        world: World, tmp_path: Path, analysed: list[int]) -> None:
    store = new_store(tmp_path)
    bundles = await sealed_flood(world, store)
    budget = 500
    report, _ = await Exposure(store).who_saw_what(PAUSE, bundles, [SPEC], lambda _: None, budget=budget)

    assert sum(analysed) == budget  # bounded work: not one statement parsed past the budget
    assert report.over_budget == report.unparsed == report.statements - budget
    assert report.over_budget >= FLOOD - budget  # the rest of the flood, and the read after it
    # what was parsed is reported; who could not be read is named with where their lines lie, never guessed
    assert report.users == ["employee_0001"]
    assert report.unparsed_users == ["employee_0001", "employee_0002"]
    assert all("budget" in u.error for u in report.unparsed_statements)


async def test_a_retry_goes_on_from_the_last_checkpoint_and_reports_the_same(
        world: World, tmp_path: Path, analysed: list[int]) -> None:
    store = new_store(tmp_path)
    bundles = await sealed_flood(world, store)
    scope, who = read_scope([DatasetPaths(name=SPEC.name, schema=SPEC.schema_name, tables=tuple(SPEC.tables))])
    # the path the flood read through was open only from its middle on (as the origins would say)
    times = sorted(datetime.fromisoformat(r["at"]) for b in bundles for r in store.iter_bundle(b))
    opened = times[len(times) // 2]

    def covers(user: str, table: str, how: str, via: str | None, at: datetime) -> bool:
        return at >= opened

    whole: WhoSawWhat = await build_who_saw_what(scope, who, (store.iter_bundle(b) for b in bundles), covers=covers)
    assert sum(analysed) == whole.statements  # every statement is distinct: each one parsed once
    assert sum(e.outside for e in whole.entries) > 0 and sum(e.reads for e in whole.entries) > 0
    analysed.clear()

    saved: list[EvidenceRef] = []

    def crash_after_two(ref: EvidenceRef) -> None:
        saved.append(ref)
        if len(saved) == 2:
            raise Crash

    exposure = Exposure(store)
    with pytest.raises(Crash):
        await exposure.who_saw_what(PAUSE, bundles, [SPEC], lambda _: None, checkpointed=crash_after_two, every=400,
                                    covers=covers)
    first_attempt = sum(analysed)
    analysed.clear()

    # the next attempt is handed what the last heartbeat carried, and checks it is this pause's
    checkpoint = recorded_checkpoint(["1 bundles read", checkpoint_detail(saved[-1])], PAUSE)
    assert checkpoint == saved[-1]
    resumed, _ = await exposure.who_saw_what(PAUSE, bundles, [SPEC], lambda _: None, checkpoint=checkpoint, every=400,
                                             covers=covers)

    assert resumed.model_dump(exclude={"scope"}) == whole.model_dump(exclude={"scope"})
    # the second attempt parsed only what lay after the checkpoint (800 records in)
    assert sum(analysed) == whole.statements - 800
    assert first_attempt >= 800


def test_a_heartbeat_naming_another_pauses_checkpoint_or_nonsense_is_ignored(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    ours = store.put_json(exposure_checkpoint_key(PAUSE, 400), {"records": 400})
    theirs = store.put_json(exposure_checkpoint_key("employee-telemetry/other", 400), {"records": 400})
    report = store.put_json(f"{PAUSE}/report", {"records": 400})

    assert recorded_checkpoint([checkpoint_detail(ours)], PAUSE) == ours
    assert recorded_checkpoint([checkpoint_detail(theirs)], PAUSE) is None
    assert recorded_checkpoint([checkpoint_detail(report)], PAUSE) is None
    assert recorded_checkpoint([{"checkpoint": {"uri": "x"}}], PAUSE) is None
    assert recorded_checkpoint(["3 bundles read", 7, None], PAUSE) is None
