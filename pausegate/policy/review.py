"""Who may do what to a pause, and when: the rules behind every update validator.

Each ``check_*`` function raises ``ActionRefused`` with a code and a reason a person can
act on; the workflow turns it into a rejected update, which changes no state.

Roles are judged as effective for the runbook's program (``Actor.for_program``): the API resolves
them before an update is sent, and the rules resolve again (a no-op then), so an actor who reaches
the workflow another way is judged the same and a role held for another program never counts here.
People are compared by identity id (``local:…``, ``oidc:…``) and, for OIDC identities, by verified
email: two identities with one verified email are one person to the quorum.
"""

from __future__ import annotations

from collections.abc import Sequence

from pausegate.errors import ActionRefused
from pausegate.models.checklist import ItemStatus
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.plan import Approval, PlanRecord
from pausegate.models.runbook import Runbook
from pausegate.models.updates import (
    ApproveInput,
    CompleteItemInput,
    DecommissionInput,
    ProposePlanInput,
    RejectPlanInput,
    RetryStepInput,
    WaiveAgentsInput,
    WaiveResidualInput,
    WaiveStepInput,
)
from pausegate.policy.access_plan import validate_plan_grants
from pausegate.policy.authority import names as _names
from pausegate.policy.authority import require_any, require_commander

REVIEW_PHASES = frozenset({Phase.CONTAINING, Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL})


def effective(runbook: Runbook, actor: Actor) -> Actor:
    """``actor`` with the roles effective for the runbook's program."""
    return actor.for_program(runbook.program.id)


def check_phase(phase: Phase, allowed: frozenset[Phase], action: str) -> None:
    if phase not in allowed:
        raise ActionRefused(
            "wrong_state",
            f"cannot {action} while the pause is {phase.value} (allowed in: {_names(sorted(allowed))})",
        )


def check_completion(
    runbook: Runbook, phase: Phase, items: Sequence[ItemStatus], request: CompleteItemInput
) -> None:
    """A reviewer may complete an item they hold a role for, once its dependencies are done,
    with every piece of evidence the runbook requires."""
    check_phase(phase, REVIEW_PHASES, "complete checklist items")
    by_id = {i.id: i for i in items}
    item = by_id.get(request.item_id)
    if item is None:
        raise ActionRefused(
            "unknown_item", f"unknown checklist item {request.item_id!r} (known: {_names(sorted(by_id))})"
        )
    require_any(effective(runbook, request.actor), item.roles, f"completing item {item.id!r}")
    unmet = [d for d in item.depends_on if not by_id[d].done]
    if unmet:
        raise ActionRefused(
            "unmet_dependency", f"item {item.id!r} depends on {_names(unmet)}, not complete yet"
        )
    attached = {e.name for e in request.evidence}
    missing = [name for name in item.evidence_required if name not in attached]
    if missing:
        raise ActionRefused(
            "missing_evidence", f"item {item.id!r} requires evidence {_names(missing)}, which is not attached"
        )
    duplicated = sorted({e.name for e in request.evidence if [x.name for x in request.evidence].count(e.name) > 1})
    if duplicated:
        raise ActionRefused("duplicate_evidence", f"evidence {_names(duplicated)} attached more than once")


def check_proposal(runbook: Runbook, phase: Phase, request: ProposePlanInput) -> None:
    """A proposer may propose a narrowed plan: named grantees in policy, known datasets and tables."""
    check_phase(phase, REVIEW_PHASES, "propose a resume plan")
    policy = runbook.resume_policy
    require_any(effective(runbook, request.actor), policy.proposer_roles, "proposing a resume plan")
    problems = validate_plan_grants(
        request.plan.grants,
        forbid_public=policy.forbid_public_grants,
        allowed_roles=policy.allowed_grantee_roles,
        datasets={d.name: d.tables for d in runbook.datasets},
    )
    if problems:
        raise ActionRefused("invalid_plan", "; ".join(problems))


def _check_approver(
    runbook: Runbook, commander: Actor, plan: PlanRecord | None, approvals: Sequence[Approval], actor: Actor, role: str
) -> None:
    policy = runbook.resume_policy
    sod = policy.separation_of_duties
    actor = effective(runbook, actor)
    if role not in policy.approver_roles:
        raise ActionRefused(
            "wrong_role", f"{role!r} is not an approver role (approver roles: {_names(policy.approver_roles)})"
        )
    require_any(actor, [role], f"approving as {role!r}")
    if sod.commander_cannot_approve and actor.same_person(commander.id, commander.email):
        raise ActionRefused(
            "separation_of_duties", f"{actor.id} paused this program as commander and may not approve"
        )
    if sod.proposer_cannot_approve and plan is not None and actor.same_person(plan.proposed_by, plan.proposed_by_email):
        raise ActionRefused("separation_of_duties", f"{actor.id} proposed this plan and may not approve it")
    earlier = next((a for a in approvals if actor.same_person(a.actor_id, a.email)), None)
    if earlier is not None:
        as_whom = "" if earlier.actor_id == actor.id else f" as {earlier.actor_id} (the same verified email)"
        raise ActionRefused("duplicate_approval", f"{actor.id} has already approved{as_whom}")
    if sod.one_approval_per_role and any(a.role == role for a in approvals):
        raise ActionRefused("duplicate_role", f"role {role!r} has already approved; another role must")


def check_approval(
    runbook: Runbook,
    phase: Phase,
    commander: Actor,
    plan: PlanRecord | None,
    current_digest: str | None,
    approvals: Sequence[Approval],
    request: ApproveInput,
) -> None:
    """An approver approves the current plan and review, once, and never as the commander."""
    if phase != Phase.AWAITING_APPROVAL:
        raise ActionRefused(
            "wrong_state",
            f"nothing to approve while the pause is {phase.value}: approval needs containment confirmed, "
            "the checklist complete and a plan proposed",
        )
    _check_approver(runbook, commander, plan, approvals, request.actor, request.role)
    if request.digest != current_digest:
        raise ActionRefused(
            "stale_plan",
            f"digest {request.digest[:12]}… is not the current plan and review ({(current_digest or '')[:12]}…); "
            "review the current plan and approve its digest",
        )


def check_rejection(runbook: Runbook, phase: Phase, plan: PlanRecord | None, request: RejectPlanInput) -> None:
    """An approver or proposer may reject the current plan."""
    check_phase(phase, REVIEW_PHASES, "reject a plan")
    if plan is None:
        raise ActionRefused("no_plan", "there is no plan to reject")
    policy = runbook.resume_policy
    require_any(effective(runbook, request.actor), [*policy.approver_roles, *policy.proposer_roles], "rejecting a plan")


def check_waiver(
    runbook: Runbook, phase: Phase, unconfirmed: int, unconfirmed_ids: Sequence[str], request: WaiveAgentsInput
) -> None:
    """Only a commander may stop waiting for unconfirmed agents, naming agents that are unconfirmed."""
    require_commander(runbook, effective(runbook, request.actor), "waiving agents")
    check_phase(phase, REVIEW_PHASES, "waive agents")
    if unconfirmed == 0:
        raise ActionRefused("nothing_to_waive", "no agent is unconfirmed")
    # Ids beyond the listed ones cannot be checked here; the fleet re-checks them.
    if unconfirmed <= len(unconfirmed_ids):
        unknown = [a for a in request.agent_ids if a not in set(unconfirmed_ids)]
        if unknown:
            raise ActionRefused(
                "unknown_agent", f"agents {_names(unknown[:10])} are not unconfirmed (unconfirmed: "
                f"{_names(list(unconfirmed_ids)[:10])}{'…' if len(unconfirmed_ids) > 10 else ''})"
            )


def check_residual_waiver(
    runbook: Runbook, phase: Phase, residual: dict[str, int], waived: set[str], request: WaiveResidualInput
) -> None:
    """Only a commander may accept access that no REVOKE can close (superusers, owners), per dataset."""
    require_commander(runbook, effective(runbook, request.actor), "waiving residual access")
    check_phase(phase, REVIEW_PHASES, "waive residual access")
    if request.dataset not in residual:
        raise ActionRefused("unknown_dataset", f"dataset {request.dataset!r} has not been contained yet")
    if residual[request.dataset] == 0:
        raise ActionRefused("nothing_to_waive", f"dataset {request.dataset!r} has no residual access")
    if request.dataset in waived:
        raise ActionRefused("nothing_to_waive", f"residual access to {request.dataset!r} is already waived")


def check_decommission(
    runbook: Runbook, phase: Phase, commander: Actor, votes: Sequence[Approval], request: DecommissionInput
) -> None:
    """Decommissioning is voted by approvers under the same separation of duties as a resume."""
    check_phase(phase, REVIEW_PHASES, "decommission the program")
    _check_approver(runbook, commander, None, votes, request.actor, request.role)


def person(approval: Approval) -> tuple[str, str]:
    """Who an approval counts as: the verified email when the identity has one (several identities
    of one person share it), else the identity id."""
    return ("email", approval.email) if approval.email is not None else ("id", approval.actor_id)


def quorum_met(runbook: Runbook, approvals: Sequence[Approval], digest: str | None) -> bool:
    """Enough distinct people (and roles, if required) have approved this exact digest; approvals of
    identities with one verified email count once."""
    valid = [a for a in approvals if digest is None or a.digest == digest]
    people = {person(a) for a in valid}
    roles = {a.role for a in valid}
    needed = runbook.resume_policy.quorum
    if runbook.resume_policy.separation_of_duties.one_approval_per_role:
        return len(people) >= needed and len(roles) >= needed
    return len(people) >= needed


def check_step_decision(
    runbook: Runbook, phase: Phase, blocked: Sequence[str], request: RetryStepInput | WaiveStepInput
) -> None:
    """Only a commander may retry or waive a blocked containment step, and only a step that is blocked."""
    what = "retrying a blocked step" if isinstance(request, RetryStepInput) else "waiving a blocked step"
    require_commander(runbook, effective(runbook, request.actor), what)
    check_phase(phase, REVIEW_PHASES, what)
    if request.step not in blocked:
        raise ActionRefused(
            "not_blocked", f"step {request.step!r} is not blocked (blocked: {_names(list(blocked))})"
        )
