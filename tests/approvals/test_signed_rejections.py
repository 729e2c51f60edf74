"""A rejection is a decision in the same signed statement (decision reject, the reason as its comment).
Where the runbook requires signatures only a verified rejection voids the plan; a token alone, a statement
of another decision, reason, pause or round, or a key of someone else is refused. A pause begun before
signed approvals keeps its token rejections."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pausegate.approvals.statement import ApprovalStatement, Decision
from pausegate.errors import ActionRefused
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.updates import RejectPlanInput
from pausegate.policy import review, signoff
from pausegate.policy import transitions as t
from tests.approvals.conftest import CISO, COMMANDER, CPO, STARTED, SignedPause, signed_runbook
from tests.support.fault_report import record_result

REASON = "the analysts' grant still covers typed content"
AT = STARTED + timedelta(hours=2)


def rejection(pause: SignedPause, actor: Actor, role: str | None, envelope: object = None,
              reason: str = REASON) -> RejectPlanInput:
    return RejectPlanInput.model_validate({"actor": actor, "reason": reason, "role": role, "envelope": envelope})


def statement(pause: SignedPause, actor: Actor, role: str, *, reason: str = REASON,
              decision: Decision = "reject") -> ApprovalStatement:
    return signoff.statement_to_sign(pause.state, approver_id=actor.id, role=role, comment=reason, at=AT,
                                     decision=decision)


def validate(pause: SignedPause, request: RejectPlanInput) -> None:
    """What the workflow's validator runs."""
    review.check_rejection(pause.runbook, pause.state.phase, pause.state.plan, request)
    signoff.check_rejection(pause.runbook, pause.state, request)


def refused(pause: SignedPause, request: RejectPlanInput, code: str) -> str:
    with pytest.raises(ActionRefused) as caught:
        validate(pause, request)
    assert caught.value.code == code, caught.value.reason
    assert pause.state.plan is not None  # a refused rejection changes nothing
    return caught.value.reason


def proven(fault: str) -> None:
    record_result(fault, "a pause awaiting signed approvals", injected=1, outcome="refused, the plan stands")


class TestSignedRejections:
    def test_a_rejection_signed_with_an_enrolled_ssh_key_voids_the_plan_and_names_its_key(
        self, pause: SignedPause
    ) -> None:
        pause.approve(pause.request(CPO, "cpo", pause.pat.sign(pause.statement(CPO, "cpo"))))
        request = rejection(pause, CISO, "ciso", pause.cleo.sign(statement(pause, CISO, "ciso")))
        validate(pause, request)
        signoff.reject(pause.state, pause.runbook, request, AT, t.reject_plan)
        assert pause.state.plan is None
        assert pause.state.approvals == []
        [signed] = [e for e in pause.state.timeline if e.action == "plan.rejection.signed"]
        assert signed.actor == "cleo" and pause.cleo.key_id[:12] in signed.detail

    def test_a_rejection_signed_with_a_passkey_counts_too(self, pause: SignedPause) -> None:
        request = rejection(pause, CPO, "cpo", pause.pat.sign(statement(pause, CPO, "cpo")))
        signoff.reject(pause.state, pause.runbook, request, AT, t.reject_plan)
        assert pause.state.plan is None

    def test_a_token_alone_does_not_reject_where_the_runbook_requires_signatures(self, pause: SignedPause) -> None:
        assert "rejections signed" in refused(pause, rejection(pause, CISO, None), "signature_required")
        proven("a token-only rejection where signatures are required")

    def test_an_approval_statement_is_not_a_rejection(self, pause: SignedPause) -> None:
        approval = pause.cleo.sign(statement(pause, CISO, "ciso", decision="approve"))
        reason = refused(pause, rejection(pause, CISO, "ciso", approval), "bad_statement")
        assert "signed decision 'approve', not 'reject'" in reason
        proven("a signed approval replayed as a rejection")

    def test_a_rejection_statement_is_not_an_approval(self, pause: SignedPause) -> None:
        rejected = pause.cleo.sign(statement(pause, CISO, "ciso", reason=""))
        with pytest.raises(ActionRefused, match="signed decision 'reject', not 'approve'"):
            pause.validate(pause.request(CISO, "ciso", rejected))
        proven("a signed rejection replayed as an approval")

    def test_the_reason_sent_must_be_the_reason_signed(self, pause: SignedPause) -> None:
        envelope = pause.cleo.sign(statement(pause, CISO, "ciso"))
        reason = refused(pause, rejection(pause, CISO, "ciso", envelope, reason="approved after all"), "bad_statement")
        assert "the comment sent is not the comment signed" in reason

    def test_a_rejection_signed_for_another_round_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.cleo.sign(statement(pause, CISO, "ciso"))
        assert pause.state.plan is not None
        pause.state.plan = pause.state.plan.model_copy(update={"proposed_at": AT})  # proposed again: a new round
        assert signoff.advance(pause.state, lambda: "n0nce-" + "2" * 26)
        assert "another sign-off round" in refused(pause, rejection(pause, CISO, "ciso", envelope), "bad_statement")

    def test_a_rejection_signed_with_someone_elses_key_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.pat_ssh.sign(statement(pause, CISO, "ciso"))
        assert "not to the approver" in refused(pause, rejection(pause, CISO, "ciso", envelope), "unknown_key")
        proven("a rejection signed with another person's key")

    def test_a_signed_rejection_names_a_role_the_rejecter_holds(self, pause: SignedPause) -> None:
        envelope = pause.cleo.sign(statement(pause, CISO, "cpo"))
        refused(pause, rejection(pause, CISO, "cpo", envelope), "wrong_role")
        refused(pause, rejection(pause, CISO, None, envelope), "wrong_role")

    def test_the_commander_may_reject_with_their_own_key(self, pause: SignedPause) -> None:
        request = rejection(pause, COMMANDER, "incident-commander",
                            pause.carol.sign(statement(pause, COMMANDER, "incident-commander")))
        validate(pause, request)


class TestTokenRejections:
    def test_where_signatures_are_optional_a_token_rejection_still_voids_the_plan(self, pause: SignedPause) -> None:
        policy = pause.runbook.resume_policy.model_copy(update={"signatures": "optional"})
        pause.runbook = pause.runbook.model_copy(update={"resume_policy": policy})
        request = rejection(pause, CISO, None)
        validate(pause, request)
        signoff.reject(pause.state, pause.runbook, request, AT, t.reject_plan)
        assert pause.state.plan is None
        assert not any(e.action == "plan.rejection.signed" for e in pause.state.timeline)

    def test_a_pause_begun_before_signed_approvals_keeps_token_rejections(self, pause: SignedPause) -> None:
        pause.state.signoff = None  # what a run without the signed-approvals patch carries
        assert pause.runbook == signed_runbook() and pause.state.phase == Phase.AWAITING_APPROVAL
        request = rejection(pause, CISO, None)
        validate(pause, request)
        signoff.reject(pause.state, pause.runbook, request, AT, t.reject_plan)
        assert pause.state.plan is None
