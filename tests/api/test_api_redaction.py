"""What a caller without a role in the program sees of its pause: an allow-listed view, and no pause in
the list (issue 29). The scope gate (``test_api_scope_gate``) checks what names access; this checks the
rest people wrote or the system knows about them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio

from pausegate.api.models import PauseView
from pausegate.api.redaction import REDACTED_SUBJECT, redact_state
from pausegate.models.checklist import EvidenceAttachment, ItemStatus
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.plan import AgentSelection, Approval, CopyDecision, PlanDiffSummary, PlanRecord, ResumePlan
from pausegate.models.state import BlockedStep, ContainmentProgress, PauseState, TimelineEntry, Waiver
from tests.api.support import NARROWED_PLAN, ApiWorld, api_world
from tests.support.fault_report import record_result
from tests.support.harness import Harness

REASON = "ann-copied-the-keystrokes-table-to-her-laptop"
SUMMARY = "summary-written-by-the-security-lead"
CONDITION = "condition-only-reviewers-may-read"
AGENTS = ["agent-of-employee-0042", "agent-of-employee-0043"]
EMAIL = "approver.cleo@example.com"
COMMENT = "comment-of-the-approver-naming-roles"


@pytest_asyncio.fixture
async def approved_once(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    """A pause of the example with a reason, a plan (summary, conditions, listed agents) and one approval
    by an OIDC approver with a verified e-mail: everything a role-less caller must not read."""
    async with api_world(harness, tmp_path / "api") as api:
        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": REASON})
        assert r.status_code == 201, r.text
        await api.wait_for_state("UNDER_REVIEW")
        await api.complete_review()
        plan = {**NARROWED_PLAN, "summary": SUMMARY, "conditions": [CONDITION],
                "agents": {"mode": "listed", "agent_ids": AGENTS}}
        proposed = await api.client("sam").post(f"/v1/pauses/{api.program}/plan", json=plan)
        assert proposed.status_code == 200, proposed.text
        approver = api.client(token=api.issuer.token("cleo-oidc", [f"pausegate:{api.program}:ciso"],
                                                     extra={"email": EMAIL, "email_verified": True}))
        r = await approver.post(f"/v1/pauses/{api.program}/approvals",
                                json={"digest": proposed.json()["digest"], "comment": COMMENT})
        assert r.status_code == 200, r.text
        yield api


class TestRoleLessCaller:
    async def test_sees_the_allow_listed_view_and_no_pause_in_the_list(self, approved_once: ApiWorld) -> None:
        api = approved_once
        full = await api.view("tom")  # cto: an approver role
        assert full["reason"] == REASON and full["approvals"][0]["email"] == EMAIL
        evidence_key = full["evidence_key"]
        bundles = [e["bundle"]["uri"] for e in full["containment"]["evidence"]]
        hidden = [REASON, SUMMARY, CONDITION, *AGENTS, EMAIL, COMMENT, evidence_key, *bundles]
        assert len(bundles) >= 1 and all(len(h) >= 8 for h in hidden)

        # An OIDC user whose groups are not pausegate's holds no role at all.
        outsider = api.client(token=api.issuer.token("olga", ["employees"]))
        answer = await outsider.get(f"/v1/pauses/{api.program}")
        assert answer.status_code == 200
        leaked = [h for h in hidden if h in answer.text]
        assert leaked == []
        view = answer.json()
        assert view["redacted"] is True and view["reason"] == "" and view["evidence_key"] == ""
        # What stays: the phase, the counts and times, who did what.
        assert (view["state"], view["progress"]["agents_total"]) == (full["state"], full["progress"]["agents_total"])
        assert view["plan"]["plan"]["agents"] == {"mode": "listed", "agent_ids": [REDACTED_SUBJECT] * 2}
        assert [(a["actor_id"], a["role"], a["email"], a["comment"]) for a in view["approvals"]] == [
            (full["approvals"][0]["actor_id"], "ciso", None, "")]
        assert [e["bundle"]["records"] for e in view["containment"]["evidence"]] == [
            e["bundle"]["records"] for e in full["containment"]["evidence"]]
        # The list names no program the caller has no role in; the reviewers' list names it.
        assert (await outsider.get("/v1/pauses")).json() == []
        assert [row["program"] for row in (await api.client("tom").get("/v1/pauses")).json()] == [api.program]
        record_result("redaction by deny-list", "a caller with no pausegate group reads the pause and the list",
                      injected=len(hidden), outcome="none of reason, summary, conditions, agent ids, e-mail, "
                      "comment, evidence key or references shown; the list is empty")


def _everything() -> PauseState:
    """A state with every field that must not reach a role-less caller filled in."""
    at = datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    ref = EvidenceRef(uri="evidence://p/20261130T0630Z-k3y/audit/db-reads/0", sha256="ab" * 32, records=7)
    plan = ResumePlan(agents=AgentSelection(mode="listed", agent_ids=AGENTS), conditions=[CONDITION],
                      summary=SUMMARY, copies=[CopyDecision(copy_id="0" * 16, action="waive", reason=COMMENT)])
    containment = ContainmentProgress(
        started_at=at, evidence=[SnapshotResult(source="db", window_start=at, window_end=at, bundle=ref, chunks=1)],
        errors=["revoke failed: role employee_0042 on db.internal"],
        blocked=[BlockedStep(step="containment.agents", reason="fleet said agent-of-employee-0042 is gone",
                             since=at)],
    )
    containment.agents.unconfirmed_ids = AGENTS
    containment.agents.last_error = "fleet: agent-of-employee-0042 timed out"
    return PauseState(
        pause_id="pause/x", incident_id="inc-1", evidence_key="p/20261130T0630Z-k3y", program="p",
        phase="AWAITING_APPROVAL", reason=REASON, severity="high", commander="local:carol", started_at=at, quorum=2,
        containment=containment,
        checklist=[ItemStatus(id="scope", title="Scope", roles=["ciso"], depends_on=[], evidence_required=["r"],
                              completed_by="local:ann", completed_at=at, note=COMMENT,
                              evidence=[EvidenceAttachment(name="r", uri="https://wiki.example.com/secret-page")])],
        plan=PlanRecord(plan=plan, plan_digest="cd" * 32, proposed_by="local:sam", proposed_at=at,
                        diff=[PlanDiffSummary(dataset="telemetry", loses=3, keeps=1, gains=0,
                                              loses_roles=["employee_0042"], diff=ref)]),
        approvals=[Approval(actor_id="oidc:x#cleo", role="ciso", digest="ef" * 32, at=at, comment=COMMENT,
                            email=EMAIL)],
        waivers=[Waiver(agent_ids=AGENTS, reason=COMMENT, by="local:carol", at=at)],
        timeline=[TimelineEntry(at=at + timedelta(seconds=1), actor="local:ann", action="complete_item",
                                detail=COMMENT)],
        timeline_archived=[ref], report=ref, resume_error="grant to employee_0042 failed",
    )


def test_the_redacted_state_holds_only_what_the_allow_list_names() -> None:
    state = _everything()
    shown = redact_state(state)
    text = PauseView.of(state, reveal=False).model_dump_json()
    for secret in (REASON, SUMMARY, CONDITION, *AGENTS, EMAIL, COMMENT, state.evidence_key, "employee_0042",
                   "secret-page", "ab" * 32):
        assert secret not in text, secret
    kept: dict[str, Any] = {
        "phase": shown.phase, "commander": shown.commander, "completed_by": shown.checklist[0].completed_by,
        "loses": shown.plan.diff[0].loses if shown.plan else None, "waived": len(shown.waivers[0].agent_ids),
        "records": shown.containment.evidence[0].bundle.records, "timeline": shown.timeline[0].action,
    }
    assert kept == {"phase": state.phase, "commander": "local:carol", "completed_by": "local:ann", "loses": 3,
                    "waived": 2, "records": 7, "timeline": "complete_item"}
    # The view a role-less caller reads back still validates (the CLI parses it).
    assert PauseView.model_validate_json(text).redacted is True
