"""Every validator rejection: refused with a reason, nothing changed, the refusal in the timeline."""

from __future__ import annotations

import pytest

from pausegate.errors import ActionRefused
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.plan import ResumePlan
from pausegate.models.state import PauseState
from pausegate.models.updates import ApproveInput, CompleteItemInput, ProposePlanInput
from tests.support.harness import ANALYST, CISO, COMMANDER, CPO, SECURITY_LEAD, Harness
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_lifecycle import NARROWED_PLAN, complete_review

REPORT = EvidenceAttachment(name="access-report", uri="https://docs.example.com/access", sha256="cd" * 32)


def without_refusals(status: PauseState) -> dict[str, object]:
    """The pause's state, ignoring timeline entries that record refusals."""
    data = status.model_dump(mode="json")
    data["timeline"] = [e for e in data["timeline"] if e["accepted"]]
    return data


async def refused(h: Harness, action: object, code: str) -> str:
    """Send an action that must be refused with ``code``; assert it changed nothing but the timeline."""
    before = await h.status()
    with pytest.raises(ActionRefused) as info:
        await h.act(action)
    assert info.value.code == code, info.value.reason
    # A new entry, or one more on the entry of the same actor and action this minute.
    after = await h.wait_for(lambda s: s.timeline != before.timeline, what="refusal recorded")
    assert without_refusals(after) == without_refusals(before)
    actor = action.actor.id  # type: ignore[attr-defined]
    entry = next(e for e in reversed(after.timeline) if e.actor == actor and not e.accepted)
    assert code in entry.detail
    assert sum(e.count for e in after.timeline if not e.accepted) == \
        sum(e.count for e in before.timeline if not e.accepted) + 1
    return info.value.reason


class TestChecklistRefusals:
    async def test_unknown_item_wrong_role_unmet_dependency_and_missing_evidence_are_refused(
        self, harness: Harness
    ) -> None:
        h = harness
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        reason = await refused(h, CompleteItemInput(actor=ANALYST, item_id="no-such-item"), "unknown_item")
        assert "no-such-item" in reason
        reason = await refused(h, CompleteItemInput(actor=Actor(id="mallory", roles=["employee"]),
                                                    item_id="access-review", evidence=[REPORT]), "wrong_role")
        assert "security-analyst" in reason
        reason = await refused(h, CompleteItemInput(actor=SECURITY_LEAD, item_id="root-cause",
                                                    evidence=[EvidenceAttachment(name="root-cause-analysis",
                                                                                 uri="https://x/rca")]),
                               "unmet_dependency")
        assert "access-review" in reason
        reason = await refused(h, CompleteItemInput(actor=ANALYST, item_id="access-review"), "missing_evidence")
        assert "access-report" in reason
        # The same item with its evidence goes through.
        await h.act(CompleteItemInput(actor=ANALYST, item_id="access-review", evidence=[REPORT]))
        status = await h.status()
        assert next(i for i in status.checklist if i.id == "access-review").completed_by == "ann"


class TestApprovalRefusals:
    async def test_commander_twice_stale_and_early_approvals_are_refused(self, harness: Harness) -> None:
        h = harness
        # The commander also holds a leadership role: separation of duties still applies.
        commander = Actor(id="carol", roles=["incident-commander", "ciso"])
        handle, _ = await h.pause(commander=commander)
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        early_digest = "0" * 64
        await refused(h, ApproveInput(actor=CISO, role="ciso", digest=early_digest), "wrong_state")

        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        digest = status.approval_digest
        assert digest is not None

        await refused(h, ApproveInput(actor=commander, role="ciso", digest=digest), "separation_of_duties")
        await h.act(ApproveInput(actor=CISO, role="ciso", digest=digest))
        await refused(h, ApproveInput(actor=Actor(id="cleo", roles=["ciso", "cto"]), role="cto", digest=digest),
                      "duplicate_approval")
        # A new plan voids the approval; approving the old digest is approving a stale plan.
        await h.act(ProposePlanInput(actor=COMMANDER, plan=ResumePlan(summary="no grants at all")))
        status = await h.status()
        assert status.approvals == [] and status.approval_digest != digest
        await refused(h, ApproveInput(actor=CPO, role="cpo", digest=digest), "stale_plan")
        assert status.phase == Phase.AWAITING_APPROVAL
        await replay_and_maybe_record(handle, "approval-refusals")
