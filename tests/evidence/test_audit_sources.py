"""Audit sources (JSONL, fleet, PostgreSQL jsonlog) and the who-saw-what report."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pausegate.connectors.audit.sources import FleetAuditSource, JsonlSource, statement_kind
from pausegate.errors import EvidenceError
from pausegate.models.fleet import AuditRecord

from .conftest import T0


async def collect(it: AsyncIterator[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) async for r in it]


def write_jsonl(path: Path, records: list[Any]) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


class TestJsonlSource:
    async def test_yields_only_the_window_across_files(self, tmp_path: Path) -> None:
        write_jsonl(
            tmp_path / "a.jsonl", [{"at": (T0 + timedelta(minutes=i)).isoformat(), "i": i} for i in range(5)]
        )
        write_jsonl(tmp_path / "b.jsonl", [{"at": "2026-11-29T06:40:00Z", "i": 10}, ""])
        got = await collect(
            JsonlSource(tmp_path / "*.jsonl").records(T0 + timedelta(minutes=1), T0 + timedelta(minutes=10))
        )
        assert [r["i"] for r in got] == [1, 2, 3, 4]  # end is exclusive

    async def test_naive_times_are_utc(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "a.jsonl", [{"at": "2026-11-29T06:30:00", "i": 1}])
        assert (
            len(await collect(JsonlSource(tmp_path / "a.jsonl").records(T0, T0 + timedelta(seconds=1)))) == 1
        )

    async def test_unreadable_line_fails_loudly_or_is_skipped(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "a.jsonl", [{"at": T0.isoformat()}, "not json", {"no_time": 1}])
        with pytest.raises(EvidenceError, match=r"a\.jsonl:2"):
            await collect(JsonlSource(tmp_path / "a.jsonl").records(T0, T0 + timedelta(hours=1)))
        lenient = JsonlSource(tmp_path, strict=False)
        assert len(await collect(lenient.records(T0, T0 + timedelta(hours=1)))) == 1


class FakeFleet:
    def __init__(self, records: list[AuditRecord]) -> None:
        self._records = records
        self.asked: tuple[str, datetime, datetime] | None = None

    async def audit_trail(self, program: str, start: datetime, end: datetime) -> AsyncIterator[AuditRecord]:
        self.asked = (program, start, end)
        for r in self._records:  # deliberately ignores the window, like a sloppy fleet
            yield r


class TestFleetAuditSource:
    async def test_records_are_dicts_inside_the_window(self) -> None:
        recs = [
            AuditRecord(at=T0 + timedelta(minutes=i), actor="ops", action="halt", agent_id=f"a{i}")
            for i in range(4)
        ]
        fleet = FakeFleet(recs)
        source = FleetAuditSource(fleet, "employee-telemetry")  # type: ignore[arg-type]
        got = await collect(source.records(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)))
        assert [r["agent_id"] for r in got] == ["a1", "a2"]
        assert got[0]["at"] == "2026-11-29T06:31:00Z" and got[0]["action"] == "halt"
        assert fleet.asked == ("employee-telemetry", T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))


class TestStatementKind:
    def test_statement_kind_skips_comments(self) -> None:
        assert statement_kind("/* app */ -- x\n  with t as (select 1) select * from t") == "WITH"

    def test_dozens_of_empty_comments_before_a_parenthesis_do_not_stall_it(self) -> None:
        # the regex it replaced backtracked exponentially here (2^40 ways to split the comments)
        assert statement_kind("/**/" * 40 + "(SELECT * FROM telemetry.keystrokes)") == "SELECT"
