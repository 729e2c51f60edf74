"""Who may do what to a pause, and when: the rules behind every update validator.

Each ``check_*`` function raises ``PolicyViolation`` with a code and a reason a person can
act on; the workflow turns it into a rejected update, which changes no state.
"""

from __future__ import annotations

from collections.abc import Sequence

from pausegate.models.pause import (
    Actor,
    Approval,
    ApproveInput,
    CompleteItemInput,
    DecommissionInput,
    ItemStatus,
    PauseState,
    PlanRecord,
    ProposePlanInput,
    RejectPlanInput,
    WaiveAgentsInput,
    WaiveResidualInput,
)
from pausegate.models.runbook import Runbook
from pausegate.policy.access_plan import validate_plan_grants

REVIEW_STATES = frozenset({PauseState.CONTAINING, PauseState.UNDER_REVIEW, PauseState.AWAITING_APPROVAL})


class PolicyViolation(Exception):
    """A refused action: ``code`` for programs, the message for people."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


def _names(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def check_state(state: PauseState, allowed: frozenset[PauseState], action: str) -> None:
    if state not in allowed:
        raise PolicyViolation(
            "wrong_state",
            f"cannot {action} while the pause is {state.value} (allowed in: {_names(sorted(allowed))})",
        )


def check_completion(
    runbook: Runbook, state: PauseState, items: Sequence[ItemStatus], request: CompleteItemInput
) -> None:
    """A reviewer may complete an item they hold a role for, once its dependencies are done,
    with every piece of evidence the runbook requires."""
    check_state(state, REVIEW_STATES, "complete checklist items")
    by_id = {i.id: i for i in items}
    item = by_id.get(request.item_id)
    if item is None:
        raise PolicyViolation(
            "unknown_item", f"unknown checklist item {request.item_id!r} (known: {_names(sorted(by_id))})"
        )
    if not request.actor.has_any(item.roles):
        raise PolicyViolation(
            "wrong_role",
            f"item {item.id!r} may be completed by roles {_names(item.roles)}; "
            f"{request.actor.id} has {_names(request.actor.roles)}",
        )
    unmet = [d for d in item.depends_on if not by_id[d].done]
    if unmet:
        raise PolicyViolation(
            "unmet_dependency", f"item {item.id!r} depends on {_names(unmet)}, not complete yet"
        )
    attached = {e.name for e in request.evidence}
    missing = [name for name in item.evidence_required if name not in attached]
    if missing:
        raise PolicyViolation(
            "missing_evidence", f"item {item.id!r} requires evidence {_names(missing)}, which is not attached"
        )
    duplicated = sorted({e.name for e in request.evidence if [x.name for x in request.evidence].count(e.name) > 1})
    if duplicated:
        raise PolicyViolation("duplicate_evidence", f"evidence {_names(duplicated)} attached more than once")


def check_proposal(runbook: Runbook, state: PauseState, request: ProposePlanInput) -> None:
    """A proposer may propose a narrowed plan: named grantees in policy, known datasets and tables."""
    check_state(state, REVIEW_STATES, "propose a resume plan")
    policy = runbook.resume_policy
    if not request.actor.has_any(policy.proposer_roles):
        raise PolicyViolation(
            "wrong_role",
            f"a resume plan may be proposed by roles {_names(policy.proposer_roles)}; "
            f"{request.actor.id} has {_names(request.actor.roles)}",
        )
    problems = validate_plan_grants(
        request.plan.grants,
        forbid_public=policy.forbid_public_grants,
        allowed_roles=policy.allowed_grantee_roles,
        datasets={d.name: d.tables for d in runbook.datasets},
    )
    if problems:
        raise PolicyViolation("invalid_plan", "; ".join(problems))


def _check_approver(
    runbook: Runbook, commander: Actor, plan: PlanRecord | None, approvals: Sequence[Approval], actor: Actor, role: str
) -> None:
    policy = runbook.resume_policy
    sod = policy.separation_of_duties
    if role not in policy.approver_roles:
        raise PolicyViolation(
            "wrong_role", f"{role!r} is not an approver role (approver roles: {_names(policy.approver_roles)})"
        )
    if role not in actor.roles:
        raise PolicyViolation("wrong_role", f"{actor.id} does not hold the role {role!r}")
    if sod.commander_cannot_approve and actor.id == commander.id:
        raise PolicyViolation(
            "separation_of_duties", f"{actor.id} paused this program as commander and may not approve"
        )
    if sod.proposer_cannot_approve and plan is not None and actor.id == plan.proposed_by:
        raise PolicyViolation("separation_of_duties", f"{actor.id} proposed this plan and may not approve it")
    if any(a.actor_id == actor.id for a in approvals):
        raise PolicyViolation("duplicate_approval", f"{actor.id} has already approved")
    if sod.one_approval_per_role and any(a.role == role for a in approvals):
        raise PolicyViolation("duplicate_role", f"role {role!r} has already approved; another role must")


def check_approval(
    runbook: Runbook,
    state: PauseState,
    commander: Actor,
    plan: PlanRecord | None,
    current_digest: str | None,
    approvals: Sequence[Approval],
    request: ApproveInput,
) -> None:
    """An approver approves the current plan and review, once, and never as the commander."""
    if state != PauseState.AWAITING_APPROVAL:
        raise PolicyViolation(
            "wrong_state",
            f"nothing to approve while the pause is {state.value}: approval needs containment confirmed, "
            "the checklist complete and a plan proposed",
        )
    _check_approver(runbook, commander, plan, approvals, request.actor, request.role)
    if request.digest != current_digest:
        raise PolicyViolation(
            "stale_plan",
            f"digest {request.digest[:12]}… is not the current plan and review ({(current_digest or '')[:12]}…); "
            "review the current plan and approve its digest",
        )


def check_rejection(runbook: Runbook, state: PauseState, plan: PlanRecord | None, request: RejectPlanInput) -> None:
    """An approver or proposer may reject the current plan."""
    check_state(state, REVIEW_STATES, "reject a plan")
    if plan is None:
        raise PolicyViolation("no_plan", "there is no plan to reject")
    policy = runbook.resume_policy
    if not request.actor.has_any([*policy.approver_roles, *policy.proposer_roles]):
        raise PolicyViolation(
            "wrong_role",
            f"a plan may be rejected by roles {_names([*policy.approver_roles, *policy.proposer_roles])}; "
            f"{request.actor.id} has {_names(request.actor.roles)}",
        )


def check_waiver(
    runbook: Runbook, state: PauseState, unconfirmed: int, unconfirmed_ids: Sequence[str], request: WaiveAgentsInput
) -> None:
    """Only a commander may stop waiting for unconfirmed agents, naming agents that are unconfirmed."""
    if not request.actor.has_any(runbook.roles.commander):
        raise PolicyViolation(
            "wrong_role",
            f"agents may be waived by roles {_names(runbook.roles.commander)}; "
            f"{request.actor.id} has {_names(request.actor.roles)}",
        )
    check_state(state, REVIEW_STATES, "waive agents")
    if unconfirmed == 0:
        raise PolicyViolation("nothing_to_waive", "no agent is unconfirmed")
    # Ids beyond the listed ones cannot be checked here; the fleet re-checks them.
    if unconfirmed <= len(unconfirmed_ids):
        unknown = [a for a in request.agent_ids if a not in set(unconfirmed_ids)]
        if unknown:
            raise PolicyViolation(
                "unknown_agent", f"agents {_names(unknown[:10])} are not unconfirmed (unconfirmed: "
                f"{_names(list(unconfirmed_ids)[:10])}{'…' if len(unconfirmed_ids) > 10 else ''})"
            )


def check_residual_waiver(
    runbook: Runbook, state: PauseState, residual: dict[str, int], waived: set[str], request: WaiveResidualInput
) -> None:
    """Only a commander may accept access that no REVOKE can close (superusers, owners), per dataset."""
    if not request.actor.has_any(runbook.roles.commander):
        raise PolicyViolation(
            "wrong_role",
            f"residual access may be waived by roles {_names(runbook.roles.commander)}; "
            f"{request.actor.id} has {_names(request.actor.roles)}",
        )
    check_state(state, REVIEW_STATES, "waive residual access")
    if request.dataset not in residual:
        raise PolicyViolation("unknown_dataset", f"dataset {request.dataset!r} has not been contained yet")
    if residual[request.dataset] == 0:
        raise PolicyViolation("nothing_to_waive", f"dataset {request.dataset!r} has no residual access")
    if request.dataset in waived:
        raise PolicyViolation("nothing_to_waive", f"residual access to {request.dataset!r} is already waived")


def check_decommission(
    runbook: Runbook, state: PauseState, commander: Actor, votes: Sequence[Approval], request: DecommissionInput
) -> None:
    """Decommissioning is voted by approvers under the same separation of duties as a resume."""
    check_state(state, REVIEW_STATES, "decommission the program")
    _check_approver(runbook, commander, None, votes, request.actor, request.role)


def quorum_met(runbook: Runbook, approvals: Sequence[Approval], digest: str | None) -> bool:
    """Enough distinct approvers (and roles, if required) have approved this exact digest."""
    valid = [a for a in approvals if digest is None or a.digest == digest]
    people = {a.actor_id for a in valid}
    roles = {a.role for a in valid}
    needed = runbook.resume_policy.quorum
    if runbook.resume_policy.separation_of_duties.one_approval_per_role:
        return len(people) >= needed and len(roles) >= needed
    return len(people) >= needed
