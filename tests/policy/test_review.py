"""The review rules as pure functions: each refusal, and what is allowed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pausegate.errors import ActionRefused
from pausegate.models.access import GrantSpec
from pausegate.models.checklist import EvidenceAttachment, ItemStatus
from pausegate.models.digests import approval_digest, checklist_digest, plan_digest
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, Approval, PlanRecord, ResumePlan
from pausegate.models.runbook import Runbook
from pausegate.models.updates import ApproveInput, CompleteItemInput, ProposePlanInput, WaiveAgentsInput
from pausegate.policy import review

NOW = datetime(2026, 11, 29, tzinfo=UTC)
RUNBOOK = Runbook.model_validate(
    {
        "program": {"id": "demo", "name": "Demo"},
        "fleet": {"connection": "fleet"},
        "datasets": [{"name": "data", "connection": "db", "schema": "telemetry", "tables": ["keystrokes"]}],
        "checklist": [
            {"id": "scope", "title": "Scope", "roles": ["analyst"], "evidence": ["access-report"]},
            {"id": "cause", "title": "Cause", "roles": ["lead"], "depends_on": ["scope"]},
        ],
        "resume_policy": {
            "approver_roles": ["ciso", "cpo", "cto"],
            "quorum": 2,
            "proposer_roles": ["incident-commander"],
            "allowed_grantee_roles": ["analysts"],
        },
    }
)
COMMANDER = Actor(id="carol", roles=["incident-commander", "ciso"])
REPORT = EvidenceAttachment(name="access-report", uri="evidence://demo/report")


def items() -> list[ItemStatus]:
    return [
        ItemStatus(id=i.id, title=i.title, roles=i.roles, depends_on=i.depends_on, evidence_required=i.evidence)
        for i in RUNBOOK.checklist
    ]


def complete(item_id: str, actor: Actor, evidence: list[EvidenceAttachment] | None = None) -> CompleteItemInput:
    return CompleteItemInput(actor=actor, item_id=item_id, evidence=evidence or [])


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(ActionRefused) as info:
        call()
    return info.value.code


class TestCompletion:
    def test_an_analyst_completes_the_first_item_with_its_evidence(self) -> None:
        review.check_completion(RUNBOOK, Phase.UNDER_REVIEW, items(),
                                complete("scope", Actor(id="ann", roles=["analyst"]), [REPORT]))

    def test_an_unknown_item_is_refused(self) -> None:
        assert code_of(lambda: review.check_completion(
            RUNBOOK, Phase.UNDER_REVIEW, items(), complete("nope", Actor(id="ann", roles=["analyst"])))
        ) == "unknown_item"

    def test_a_role_the_item_does_not_name_is_refused(self) -> None:
        assert code_of(lambda: review.check_completion(
            RUNBOOK, Phase.UNDER_REVIEW, items(), complete("scope", Actor(id="bob", roles=["lead"]), [REPORT]))
        ) == "wrong_role"

    def test_an_item_whose_dependency_is_open_is_refused(self) -> None:
        assert code_of(lambda: review.check_completion(
            RUNBOOK, Phase.UNDER_REVIEW, items(), complete("cause", Actor(id="bob", roles=["lead"])))
        ) == "unmet_dependency"

    def test_missing_required_evidence_is_refused(self) -> None:
        assert code_of(lambda: review.check_completion(
            RUNBOOK, Phase.UNDER_REVIEW, items(), complete("scope", Actor(id="ann", roles=["analyst"])))
        ) == "missing_evidence"

    def test_completing_after_resume_is_refused(self) -> None:
        assert code_of(lambda: review.check_completion(
            RUNBOOK, Phase.RESUMED, items(), complete("scope", Actor(id="ann", roles=["analyst"]), [REPORT]))
        ) == "wrong_state"


class TestProposal:
    def plan(self, role: str) -> ProposePlanInput:
        return ProposePlanInput(actor=COMMANDER, plan=ResumePlan(
            grants=[GrantSpec(dataset="data", role=role, table="keystrokes", privileges=["select"])]))

    def test_a_grant_to_an_allowed_role_is_accepted(self) -> None:
        review.check_proposal(RUNBOOK, Phase.UNDER_REVIEW, self.plan("analysts"))

    def test_a_grant_to_public_cannot_even_be_written(self) -> None:
        with pytest.raises(ValidationError, match="public"):
            self.plan("public")

    def test_a_grant_wider_than_policy_is_refused(self) -> None:
        assert code_of(lambda: review.check_proposal(RUNBOOK, Phase.UNDER_REVIEW, self.plan("all_employees"))) \
            == "invalid_plan"

    def test_a_reviewer_without_a_proposer_role_is_refused(self) -> None:
        request = ProposePlanInput(actor=Actor(id="ann", roles=["analyst"]), plan=ResumePlan())
        assert code_of(lambda: review.check_proposal(RUNBOOK, Phase.UNDER_REVIEW, request)) == "wrong_role"


class TestApproval:
    plan = ResumePlan(agents=AgentSelection(mode="all"))
    record = PlanRecord(plan=plan, plan_digest=plan_digest(plan), proposed_by="carol", proposed_at=NOW)
    digest = approval_digest(plan_digest(plan), checklist_digest(items()))

    def approve(self, actor: Actor, role: str, digest: str | None = None,
                approvals: list[Approval] | None = None) -> None:
        review.check_approval(RUNBOOK, Phase.AWAITING_APPROVAL, COMMANDER, self.record, self.digest,
                              approvals or [], ApproveInput(actor=actor, role=role, digest=digest or self.digest))

    def test_an_approver_approves_the_current_digest(self) -> None:
        self.approve(Actor(id="dan", roles=["cto"]), "cto")

    def test_the_commander_may_not_approve_even_holding_an_approver_role(self) -> None:
        assert code_of(lambda: self.approve(COMMANDER, "ciso")) == "separation_of_duties"

    def test_one_person_may_not_approve_twice(self) -> None:
        earlier = [Approval(actor_id="dan", role="cto", digest=self.digest, at=NOW)]
        assert code_of(lambda: self.approve(Actor(id="dan", roles=["cto", "cpo"]), "cpo", approvals=earlier)) \
            == "duplicate_approval"

    def test_a_stale_digest_is_refused(self) -> None:
        assert code_of(lambda: self.approve(Actor(id="dan", roles=["cto"]), "cto", digest="0" * 64)) == "stale_plan"

    def test_a_role_the_actor_does_not_hold_is_refused(self) -> None:
        assert code_of(lambda: self.approve(Actor(id="dan", roles=["cto"]), "cpo")) == "wrong_role"

    def test_approving_before_the_review_is_ready_is_refused(self) -> None:
        assert code_of(lambda: review.check_approval(
            RUNBOOK, Phase.UNDER_REVIEW, COMMANDER, self.record, self.digest, [],
            ApproveInput(actor=Actor(id="dan", roles=["cto"]), role="cto", digest=self.digest))) == "wrong_state"

    def test_quorum_needs_two_distinct_people_and_roles_on_the_same_digest(self) -> None:
        one = Approval(actor_id="dan", role="cto", digest=self.digest, at=NOW)
        other = Approval(actor_id="eve", role="cpo", digest=self.digest, at=NOW)
        stale = Approval(actor_id="eve", role="cpo", digest="f" * 64, at=NOW)
        assert not review.quorum_met(RUNBOOK, [one], self.digest)
        assert not review.quorum_met(RUNBOOK, [one, stale], self.digest)
        assert review.quorum_met(RUNBOOK, [one, other], self.digest)


class TestDigests:
    def test_amending_evidence_changes_the_approval_digest(self) -> None:
        before = items()
        after = items()
        after[0].completed_by = "ann"
        after[0].evidence = [REPORT]
        p = plan_digest(ResumePlan())
        assert approval_digest(p, checklist_digest(before)) != approval_digest(p, checklist_digest(after))

    def test_a_different_plan_changes_the_digest(self) -> None:
        assert plan_digest(ResumePlan()) != plan_digest(ResumePlan(agents=AgentSelection(mode="none")))


class TestWaiver:
    def test_only_a_commander_may_waive(self) -> None:
        request = WaiveAgentsInput(actor=Actor(id="ann", roles=["analyst"]), agent_ids=["a1"], reason="gone")
        assert code_of(lambda: review.check_waiver(RUNBOOK, Phase.CONTAINING, 1, ["a1"], request)) \
            == "wrong_role"

    def test_waiving_an_agent_that_is_not_unconfirmed_is_refused(self) -> None:
        request = WaiveAgentsInput(actor=COMMANDER, agent_ids=["a2"], reason="gone")
        assert code_of(lambda: review.check_waiver(RUNBOOK, Phase.CONTAINING, 1, ["a1"], request)) \
            == "unknown_agent"

    def test_the_commander_waives_an_unconfirmed_agent(self) -> None:
        request = WaiveAgentsInput(actor=COMMANDER, agent_ids=["a1"], reason="laptop destroyed")
        review.check_waiver(RUNBOOK, Phase.CONTAINING, 1, ["a1"], request)
