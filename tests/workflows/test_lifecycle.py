"""The worked example end to end: pause, contain, review, approve, resume, on the real stack."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import errors

from pausegate.evidence.report import render_markdown
from pausegate.models.access import GrantSpec
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.state import PauseState
from pausegate.models.steps import ReportInput
from pausegate.models.updates import ApproveInput, CompleteItemInput, ProposePlanInput
from tests.support.encryption import decrypted_history_json
from tests.support.harness import (
    ANALYST,
    CISO,
    COMMANDER,
    CPO,
    DATA_ENGINEER,
    LEGAL,
    PRIVACY,
    SECURITY_LEAD,
    Harness,
)
from tests.support.histories import replay_and_maybe_record

# Who completes which item of the worked example's checklist, in dependency order.
REVIEW = [
    ("access-review", ANALYST, "access-report"),
    ("root-cause", SECURITY_LEAD, "root-cause-analysis"),
    ("narrowed-access", DATA_ENGINEER, "access-design"),
    ("data-minimisation", PRIVACY, "data-minimisation-decision"),
    ("employee-notice", PRIVACY, "employee-notice"),
    ("legal-privacy-review", LEGAL, "legal-opinion"),
]

NARROWED_PLAN = ResumePlan(
    agents=AgentSelection(mode="all"),
    grants=[
        GrantSpec(dataset="telemetry", role="telemetry_analysts", table="keystrokes", privileges=["SELECT"],
                  columns=["id", "agent_id", "employee", "captured_at", "key_code"]),
        GrantSpec(dataset="telemetry", role="telemetry_analysts", table="mouse_events", privileges=["SELECT"]),
        GrantSpec(dataset="telemetry", role="telemetry_ingest", table="keystrokes", privileges=["INSERT"]),
        GrantSpec(dataset="telemetry", role="telemetry_ingest", table="mouse_events", privileges=["INSERT"]),
    ],
    conditions=["typed_content no longer collected", "quarterly access review"],
    summary="Analysts read without typed content; the writer writes; nobody else.",
)


def can_read(dsn: str, table: str, column: str = "id") -> bool:
    """Whether a real SELECT as the DSN's role succeeds."""
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute(f"SELECT {column} FROM telemetry.{table} LIMIT 1").fetchall()
        return True
    except errors.InsufficientPrivilege:
        return False


def telemetry_rows(dsn: str) -> tuple[int, datetime | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry.keystrokes) + (SELECT count(*) FROM telemetry.mouse_events),"
            " greatest((SELECT max(captured_at) FROM telemetry.keystrokes),"
            "          (SELECT max(captured_at) FROM telemetry.mouse_events))"
        ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def collected_samples(dsn: str) -> list[str]:
    """Some of the sensitive values the program collected (typed content, window titles)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT typed_content, window_title FROM telemetry.keystrokes"
            " WHERE typed_content IS NOT NULL LIMIT 20"
        ).fetchall()
    return [v for row in rows for v in row if v and len(v) >= 6]


def readable_history(history: Any) -> str:
    """History as JSON with every payload decrypted and decoded, so a search sees what anyone with access
    and the key would see (without the key they see less: tests/temporal/test_history_encryption.py)."""
    raw = decrypted_history_json(history)
    decoded: list[str] = [raw]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str):
                with contextlib.suppress(ValueError):
                    decoded.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    return "\n".join(decoded)


async def assert_history_holds_no_secrets(h: Harness, handle: Any) -> None:
    """Workflow history is readable by anyone with namespace access: references, digests and counts only."""
    history = readable_history(await handle.fetch_history())
    forbidden = {
        "database DSN": h.database_dsn,
        "DSN scheme": "postgresql://",
        "webhook URL": h.chat.hook_url("security"),
        "fleet URL": h.fleet.url,
        "audit statement": "FROM telemetry.",
        "signing key": "PRIVATE KEY",
    }
    for name, text in forbidden.items():
        assert text not in history, f"{name} found in workflow history"
    samples = collected_samples(h.dsn_as("security_breakglass"))
    assert samples, "the fleet wrote typed content to look for"
    for value in samples:
        assert value not in history, "collected data found in workflow history"
    # What history does hold: digests of sealed evidence.
    status = await h.status()
    assert all(e.bundle.sha256 in history for e in status.containment.evidence)


async def complete_review(h: Harness) -> None:
    for item_id, actor, evidence in REVIEW:
        await h.act(CompleteItemInput(
            actor=actor, item_id=item_id,
            evidence=[EvidenceAttachment(name=evidence, uri=f"https://docs.example.com/{item_id}",
                                         sha256="ab" * 32)],
        ))


async def wait_for_ticks(h: Harness, ticks: int) -> None:
    program = h.fleet_state.program(h.program)
    target = program.counters.ticks + ticks
    await h.eventually(lambda: program.counters.ticks >= target, what=f"{ticks} fleet ticks")


class TestLifecycle:
    async def test_the_worked_example_pauses_contains_reviews_and_resumes_under_the_plan(self, h: Harness) -> None:
        employee = h.dsn_as("employee_0001")
        # The leak as found: collection running, every employee reading the tables.
        await h.eventually(lambda: telemetry_rows(h.database_dsn)[0] > 0, what="telemetry rows")
        assert can_read(employee, "keystrokes") and can_read(employee, "mouse_events")

        handle, started = await h.pause()
        assert started
        status = await h.wait_for_state(Phase.UNDER_REVIEW)

        agents = status.containment.agents
        assert agents.confirmed and agents.switch_off
        assert (agents.total, agents.halted, agents.unconfirmed) == (200, 200, 0)
        assert [d.verified for d in status.containment.datasets] == [True]
        assert status.containment.datasets[0].roles_with_access >= 3
        assert len(status.containment.evidence) == 4  # two sources, before and after the pause
        assert status.containment.contained_at is not None

        # The company-wide grant is gone; incident response keeps access.
        assert not can_read(employee, "keystrokes")
        assert not can_read(employee, "mouse_events")
        assert can_read(h.dsn_as("security_breakglass"), "keystrokes")

        # Nothing is written after the halt was confirmed, however many ticks pass.
        rows_after_halt, newest = telemetry_rows(h.database_dsn)
        await wait_for_ticks(h, 5)
        assert telemetry_rows(h.database_dsn) == (rows_after_halt, newest)
        assert newest is not None and newest <= status.containment.contained_at

        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        assert status.approval_digest is not None
        # Reviewers see what the plan changes against the pre-incident scope.
        assert status.plan is not None and len(status.plan.diff) == 1
        diff = status.plan.diff[0]
        assert "employee_0001" in diff.loses_roles and "all_employees" in diff.loses_roles
        assert "ml_trainer" in diff.keeps_roles and "telemetry_ingest" in diff.keeps_roles
        assert "employee_0001" not in diff.keeps_roles and diff.diff is not None

        await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
        await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))
        final: PauseState = await handle.result()

        assert final.phase == Phase.RESUMED
        assert final.report is not None
        # The facts after RESUMED are the resume's, as the fleet confirmed them: every agent collects again
        # through the program switch (none was halted one by one, so none is resumed one by one).
        assert final.resumed is not None and final.resumed.switch_on
        assert final.resumed.collecting == len(h.fleet_state.program(h.program).collecting()) == 200
        assert final.resumed.grants_restored == sum(len(g.privileges) for g in NARROWED_PLAN.grants) == 4
        assert final.resumed.grants_verified
        report = h.connectors.evidence_store.read_json(final.report.key)
        assert report["resume"]["collecting"] == 200
        assert "agents collecting again: 200" in render_markdown(ReportInput.model_validate(report))
        # Exactly the narrowed access: analysts read without typed content, employees read nothing.
        trainer = h.dsn_as("ml_trainer")
        assert can_read(trainer, "mouse_events")
        assert can_read(trainer, "keystrokes", "key_code")
        assert not can_read(trainer, "keystrokes", "typed_content")
        assert not can_read(employee, "keystrokes") and not can_read(employee, "mouse_events")
        # Collection runs again and the writer can write.
        await h.eventually(lambda: telemetry_rows(h.database_dsn)[0] > rows_after_halt, what="rows after resume")

        await assert_history_holds_no_secrets(h, handle)
        await replay_and_maybe_record(handle, "lifecycle-resumed")

        actors = {(e.actor, e.action) for e in final.timeline}
        assert ("carol", "pause.started") in actors
        assert {("cleo", "plan.approved"), ("pat", "plan.approved")} <= actors
        assert ("ann", "checklist.completed") in actors
        assert any(m.text for m in h.chat.sink.received("security"))

    async def test_pulling_the_kill_switch_twice_returns_the_open_pause(self, h: Harness) -> None:
        first, started_first = await h.pause()
        second, started_second = await h.pause(reason="pulled again by a second commander")
        assert started_first and not started_second
        assert second.result_run_id == first.result_run_id
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.reason == "telemetry readable company-wide"
        assert sum(1 for e in status.timeline if e.action == "pause.started") == 1
        program = h.fleet_state.program(h.program)
        assert program.counters.switch_changes == 1
        # evidence is filed per pause, not per second: <program>/<started>-<8 hex>
        assert status.evidence_key is not None
        assert re.fullmatch(rf"{h.program}/\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}", status.evidence_key)
        assert status.incident_id == status.evidence_key.replace("/", "-", 1)
        assert all(e.bundle.uri.startswith(f"evidence://{status.evidence_key}/") for e in status.containment.evidence)


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness
