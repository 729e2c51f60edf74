"""Signed sign-off: which approvals count when a pause runs it, and the rounds its nonces bind to.

A pause begun with signed approvals (``PauseState.signoff``) holds a key ring pinned at its start and
issues a nonce for each sign-off round (a plan proposed, the review changed). An approval that carries
a signed statement counts only if the statement verifies against that ring and says exactly what the
pause expects now (``pausegate.approvals.verify``); where the runbook requires signatures, an approval
without one is refused and only verified ones count toward the quorum. A pause begun before keeps its
token approvals under the rules it started with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pausegate.approvals.statement import ApprovalStatement, Decision, Expected, build
from pausegate.approvals.verify import Verified, verify
from pausegate.errors import ActionRefused
from pausegate.models.digests import checklist_digest
from pausegate.models.phase import Phase
from pausegate.models.plan import Approval
from pausegate.models.runbook import Runbook
from pausegate.models.signatures import ApprovalSignature, SignoffRound
from pausegate.models.state import PauseState
from pausegate.models.updates import ApproveInput, RejectPlanInput
from pausegate.policy.review import effective

SIGNATURE_REQUIRED = "signature_required"


def required(runbook: Runbook, state: PauseState) -> bool:
    """Whether only signed approvals count for this pause."""
    return state.signoff is not None and runbook.resume_policy.signatures == "required"


def expected(state: PauseState, request: ApproveInput, nonce: str) -> Expected:
    return expected_of(state, nonce, approver_id=request.actor.id, role=request.role, comment=request.comment)


def expected_of(state: PauseState, nonce: str, *, approver_id: str, role: str, comment: str,
                decision: Decision = "approve") -> Expected:
    """What a decision (an approval, or a rejection with its reason as the comment) on the pause's current
    plan and review, in the round of ``nonce``, must say."""
    assert state.plan is not None
    return Expected(pause_id=state.pause_id, pause_key=state.evidence_key, incident_id=state.incident_id,
                    plan_sha256=state.plan.plan_digest, checklist_sha256=checklist_digest(state.checklist),
                    nonce=nonce, approver_id=approver_id, role=role, comment=comment, decision=decision)


def statement_to_sign(state: PauseState, *, approver_id: str, role: str, comment: str,
                      at: datetime, decision: Decision = "approve") -> ApprovalStatement:
    """The statement an approver (or, deciding ``reject``, a rejecter) signs for the pause as ``state``
    shows it now (clients build it so)."""
    if state.signoff is None or state.signoff.nonce is None or state.plan is None:
        raise ActionRefused(SIGNATURE_REQUIRED, "this pause has no open sign-off round to sign for")
    return build(expected_of(state, state.signoff.nonce, approver_id=approver_id, role=role, comment=comment,
                             decision=decision), at)


def check(runbook: Runbook, state: PauseState, request: ApproveInput) -> Verified | None:
    """The verified statement ``request`` carries (None: a token-only approval the runbook allows);
    ``ActionRefused`` when it does not verify, or when the runbook requires one and it has none."""
    signoff = state.signoff
    if signoff is None:
        return None  # begun before signed approvals: its rules are the token rules it started with
    if request.envelope is None:
        if required(runbook, state):
            raise ActionRefused(SIGNATURE_REQUIRED, "this runbook requires approvals signed with an enrolled passkey "
                                "or SSH key; a token alone does not count")
        return None
    if signoff.ring is None or signoff.nonce is None or state.plan is None:
        raise ActionRefused(SIGNATURE_REQUIRED, "this pause has no key ring or sign-off round to verify against")
    return verify(request.envelope, signoff.ring, expected(state, request, signoff.nonce), late=request.key,
                  commander=state.commander)


def approve(state: PauseState, runbook: Runbook, request: ApproveInput, now: datetime,
            record: Callable[[PauseState, ApproveInput, datetime], str]) -> str:
    """Record the approval (``record``: the token rule's transition), with its signature when it has one."""
    verified = check(runbook, state, request)
    message = record(state, request, now)
    if verified is not None:
        signed = ApprovalSignature(envelope=request.envelope, envelope_sha256=verified.envelope_sha256,  # type: ignore[arg-type]
                                   key=verified.key, signed_at=verified.statement.predicate.at)
        state.approvals[-1] = state.approvals[-1].model_copy(update={"signature": signed})
        key = verified.key
        state.record(now, request.actor.id, "plan.approval.signed",
                     f"{key.kind} key {key.key_id[:12]} enrolled {key.enrolled_at.isoformat()}, statement "
                     f"{verified.envelope_sha256[:12]}")
    return message


def check_rejection(runbook: Runbook, state: PauseState, request: RejectPlanInput) -> Verified | None:
    """The verified rejection statement ``request`` carries (None: a token-only rejection the runbook
    allows, or a pause begun before signed approvals); ``ActionRefused`` when it does not verify, or when
    the runbook requires signatures and it has none. The token rule (``review.check_rejection``) stands
    beside it; the commander may reject as the token rule lets them."""
    signoff = state.signoff
    if signoff is None:
        return None
    if request.envelope is None:
        if required(runbook, state):
            raise ActionRefused(SIGNATURE_REQUIRED, "this runbook requires rejections signed with an enrolled passkey "
                                "or SSH key; a token alone does not count")
        return None
    if signoff.ring is None or signoff.nonce is None or state.plan is None:
        raise ActionRefused(SIGNATURE_REQUIRED, "this pause has no key ring or sign-off round to verify against")
    policy = runbook.resume_policy
    if request.role is None or request.role not in {*policy.approver_roles, *policy.proposer_roles} \
            or not effective(runbook, request.actor).has_any([request.role]):
        raise ActionRefused("wrong_role", "a signed rejection names the approver or proposer role you hold and "
                            "sign as")
    expected = expected_of(state, signoff.nonce, approver_id=request.actor.id, role=request.role,
                           comment=request.reason, decision="reject")
    return verify(request.envelope, signoff.ring, expected, late=request.key)


def reject(state: PauseState, runbook: Runbook, request: RejectPlanInput, now: datetime,
           record: Callable[[PauseState, RejectPlanInput, datetime], str]) -> str:
    """Record the rejection (``record``: the token rule's transition), and the key that signed it."""
    verified = check_rejection(runbook, state, request)
    message = record(state, request, now)
    if verified is not None:
        key = verified.key
        state.record(now, request.actor.id, "plan.rejection.signed",
                     f"{key.kind} key {key.key_id[:12]} enrolled {key.enrolled_at.isoformat()}, statement "
                     f"{verified.envelope_sha256[:12]}")
    return message


def holder(approval: Approval) -> str | None:
    return approval.signature.key.holder if approval.signature is not None else None


def quorum_holds(runbook: Runbook, state: PauseState) -> bool:
    """Where signatures are required, whether enough distinct key holders signed the current digest
    (the token rule is checked beside it); True where they are not."""
    if not required(runbook, state):
        return True
    holders = {h for a in state.approvals if a.digest == state.approval_digest and (h := holder(a)) is not None}
    return len(holders) >= runbook.resume_policy.quorum


def advance(state: PauseState, new_nonce: Callable[[], str]) -> bool:
    """Open a new sign-off round (a fresh nonce) when the pause awaits approval of a plan and review the
    current round is not bound to; True when one was opened."""
    signoff = state.signoff
    if signoff is None or state.phase != Phase.AWAITING_APPROVAL or state.plan is None:
        return False
    bound_to = f"{state.approval_digest}@{state.plan.proposed_at.isoformat()}"
    if signoff.bound_to == bound_to:
        return False
    state.signoff = SignoffRound(ring=signoff.ring, round=signoff.round + 1, nonce=new_nonce(), bound_to=bound_to)
    return True
