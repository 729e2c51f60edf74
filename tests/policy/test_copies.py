"""Resume decides each copy of the data: the plan check as a pure function."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pausegate.canonical import canonical_json, sha256_hex
from pausegate.errors import ActionRefused
from pausegate.models.copies import CopiesSummary
from pausegate.models.data_actions import NullColumn, PurgeSubjects
from pausegate.models.digests import plan_digest
from pausegate.models.evidence import EvidenceRef
from pausegate.models.people import Actor
from pausegate.models.plan import CopyDecision, ResumePlan
from pausegate.policy import copies
from tests.policy.test_review import COMMANDER, RUNBOOK

A, B = "a" * 16, "b" * 16
PROPOSER = Actor(id="pia", roles=["incident-commander-deputy"])
SUMMARY = CopiesSummary(document=EvidenceRef(uri="evidence://demo/copies/contained/0", sha256="0" * 64),
                        stage="contained", found=3, quarantined=2, left_database=1, undecided=[A, B])
PURGE = PurgeSubjects(dataset="data", table="keystrokes", subject_column="employee", subjects=["e1"])


def refusal(plan: ResumePlan, proposer: Actor = COMMANDER) -> ActionRefused:
    with pytest.raises(ActionRefused) as info:
        copies.check_plan_copies(RUNBOOK, SUMMARY, plan, proposer)
    return info.value


class TestPlanCopies:
    def test_a_plan_that_decides_every_copy_passes(self) -> None:
        plan = ResumePlan(data_actions=[PURGE], copies=[CopyDecision(copy_id=A, action="drop"),
                                                        CopyDecision(copy_id=B, action="purge", data_action=0)])
        copies.check_plan_copies(RUNBOOK, SUMMARY, plan, PROPOSER)
        assert copies.undecided(SUMMARY, plan) == []

    def test_a_copy_left_undecided_refuses_the_plan_naming_it(self) -> None:
        refused = refusal(ResumePlan(copies=[CopyDecision(copy_id=A, action="keep_quarantined")]))
        assert refused.code == "copies_undecided" and B in refused.reason and A not in refused.reason

    def test_a_pause_without_copies_asks_nothing_of_the_plan(self) -> None:
        copies.check_plan_copies(RUNBOOK, None, ResumePlan(), PROPOSER)

    def test_a_copy_the_pause_did_not_find_is_refused(self) -> None:
        plan = ResumePlan(copies=[CopyDecision(copy_id=c, action="drop") for c in (A, B, "c" * 16)])
        assert refusal(plan).code == "invalid_plan"

    def test_only_the_commander_waives_a_copy_and_approvers_see_it_as_a_risk(self) -> None:
        plan = ResumePlan(copies=[CopyDecision(copy_id=A, action="waive", reason="legal hold on the sandbox"),
                                  CopyDecision(copy_id=B, action="drop")])
        assert refusal(plan, PROPOSER).code == "wrong_role"
        copies.check_plan_copies(RUNBOOK, SUMMARY, plan, COMMANDER)
        assert copies.risks(plan) == [f"copy {A} left as it is (waived): legal hold on the sandbox"]

    def test_a_purge_needs_a_data_action_that_deletes_rows(self) -> None:
        nulls = NullColumn(dataset="data", table="keystrokes", column="typed_content")
        for actions, index in (([], 0), ([nulls], 0)):
            plan = ResumePlan(data_actions=actions, copies=[CopyDecision(copy_id=A, action="purge", data_action=index),
                                                            CopyDecision(copy_id=B, action="drop")])
            assert refusal(plan).code == "invalid_plan"

    def test_a_decision_is_complete_on_its_own(self) -> None:
        with pytest.raises(ValidationError):
            CopyDecision(copy_id=A, action="waive")
        with pytest.raises(ValidationError):
            CopyDecision(copy_id=A, action="purge")
        with pytest.raises(ValidationError):
            CopyDecision(copy_id=A, action="drop", data_action=0)

    def test_a_plan_that_decides_no_copy_keeps_the_digest_it_had(self) -> None:
        plan = ResumePlan(summary="as before")
        before = {k: v for k, v in plan.model_dump(mode="json").items()
                  if k not in ("collection", "consent_required", "data_actions", "copies")}
        assert plan_digest(plan) == sha256_hex(canonical_json(before))
        assert plan_digest(plan) != plan_digest(plan.model_copy(update={
            "copies": [CopyDecision(copy_id=A, action="drop")]}))
