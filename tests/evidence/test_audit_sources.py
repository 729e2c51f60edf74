"""Audit sources (JSONL, fleet, PostgreSQL jsonlog) and the who-saw-what report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pausegate.connectors.audit.sources import (
    FleetAuditSource,
    JsonlSource,
    PostgresLogSource,
    statement_kind,
    who_saw_what,
)
from pausegate.errors import EvidenceError
from pausegate.evidence.verify import verify_bundle
from pausegate.models.fleet import AuditRecord

from .conftest import PAUSE, T0, Postgres, new_store

TABLES = ["telemetry.keystrokes", "telemetry.mouse_events"]


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


def jsonlog(ts: str, user: str, message: str, session: str = "s1", **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "user": user,
        "dbname": "hr",
        "pid": 1,
        "session_id": session,
        "error_severity": extra.pop("error_severity", "LOG"),
        "message": message,
        **extra,
    }


class TestPostgresLogParsing:
    async def test_reads_are_kept_writes_and_other_tables_are_not(self, tmp_path: Path) -> None:
        entries = [
            jsonlog("2026-11-29 06:30:01.000 UTC", "alice", "statement: SELECT * FROM telemetry.keystrokes"),
            jsonlog(
                "2026-11-29 06:30:02.000 UTC",
                "ingest",
                "statement: INSERT INTO telemetry.keystrokes VALUES (1)",
            ),
            jsonlog(
                "2026-11-29 06:30:03.000 UTC",
                "bob",
                'execute <unnamed>: select x from "telemetry"."mouse_events" where y = $1',
            ),
            jsonlog("2026-11-29 06:30:04.000 UTC", "bob", "statement: SELECT * FROM public.payroll"),
            jsonlog(
                "2026-11-29 06:30:05.000 UTC",
                "carol",
                "statement: INSERT INTO copy SELECT * FROM telemetry.keystrokes",
            ),
            jsonlog(
                "2026-11-29 06:30:06.000 UTC",
                "dave",
                "statement: SELECT * FROM telemetry.keystrokes",
                session="s9",
            ),
            jsonlog(
                "2026-11-29 06:30:06.001 UTC",
                "dave",
                "permission denied for table keystrokes",
                session="s9",
                error_severity="ERROR",
                state_code="42501",
            ),
            jsonlog("2026-11-29 08:00:00.000 UTC", "erin", "statement: SELECT * FROM telemetry.keystrokes"),
            jsonlog("2026-11-29 06:30:07.000 UTC", "", "connection received: host=[local]"),
        ]
        write_jsonl(tmp_path / "postgresql-1.json", entries)
        (tmp_path / "postgresql-1.log").write_text("not jsonlog\n")
        got = await collect(PostgresLogSource(tmp_path, TABLES).records(T0, T0 + timedelta(hours=1)))
        by_user = {r["user"]: r for r in got}
        assert sorted(by_user) == ["alice", "bob", "carol", "dave"]
        assert by_user["alice"]["objects"] == ["telemetry.keystrokes"]
        assert by_user["alice"]["at"] == "2026-11-29T06:30:01+00:00"
        assert by_user["bob"]["objects"] == ["telemetry.mouse_events"] and by_user["bob"]["kind"] == "SELECT"
        assert by_user["carol"]["kind"] == "INSERT"
        assert (by_user["dave"]["outcome"], by_user["dave"]["sqlstate"]) == ("error", "42501")
        report = who_saw_what(got)
        assert report.users == ["alice", "bob", "carol"]
        dave = report.for_user("dave")[0]
        assert (dave.reads, dave.failed) == (0, 1)

    def test_statement_kind_skips_comments(self) -> None:
        assert statement_kind("/* app */ -- x\n  with t as (select 1) select * from t") == "WITH"


class TestWhoSawWhat:
    def test_counts_first_and_last_per_role_and_object(self) -> None:
        records = [
            {"at": "2026-11-29T06:31:00+00:00", "user": "u1", "objects": ["t.a", "t.b"]},
            {"at": "2026-11-29T06:30:00+00:00", "user": "u1", "objects": ["t.a"]},
            {"at": "2026-11-29T06:35:00+00:00", "user": "u2", "objects": ["t.b"], "outcome": "error"},
        ]
        report = who_saw_what(records)
        (a, b) = report.for_user("u1")
        assert (a.object, a.reads, a.first_at, a.last_at) == ("t.a", 2, T0, T0 + timedelta(minutes=1))
        assert (b.object, b.reads) == ("t.b", 1)
        assert report.users == ["u1"] and report.statements == 3


class TestPostgresForReal:
    async def test_names_exactly_the_employee_who_read(self, postgres: Postgres, tmp_path: Path) -> None:
        start = datetime.now(UTC) - timedelta(seconds=1)
        with psycopg.connect(postgres.dsn_as("employee_0001"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM telemetry.keystrokes").fetchone()
            conn.execute("SELECT * FROM telemetry.mouse_events WHERE x > %s", (5,)).fetchall()
            conn.execute("SELECT 1").fetchone()
        with psycopg.connect(postgres.dsn_as("employee_0002"), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()  # connected, read nothing of the dataset
        await asyncio.sleep(0.3)  # the logging collector writes asynchronously
        end = datetime.now(UTC) + timedelta(seconds=5)
        source = PostgresLogSource(postgres.log_dir, TABLES)
        records = await collect(source.records(start, end))
        report = who_saw_what(records)
        assert report.users == ["employee_0001"]
        assert {(e.object, e.reads) for e in report.entries} == {
            ("telemetry.keystrokes", 1),
            ("telemetry.mouse_events", 1),
        }
        # and the same records seal and verify
        store = new_store(tmp_path)
        ref, _ = await store.seal(f"{PAUSE}/db-reads", source.records(start, end))
        assert ref.records == len(records) == 2
        assert verify_bundle(store.bundle_path(f"{PAUSE}/db-reads")).ok
