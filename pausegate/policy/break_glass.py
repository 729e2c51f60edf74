"""Break-glass access during a pause: who may ask, approve, end and review a grant, and what each
does to the pause's state. Pure: the workflow's validators and handlers call these, and so do tests.

A grant starts when approved (or at once, for an emergency self-grant the runbook allows, and then
every approver role is told), and adds a checklist item "break-glass use reviewed" that neither its
holder nor its approver may complete, and nobody may complete before the grant has ended and its
statements are sealed: the review phase cannot end, so no resume, while one is open.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from pausegate.errors import ActionRefused
from pausegate.models.break_glass import (
    MAX_GRANTS,
    REVIEW_ITEM_PREFIX,
    REVIEW_ITEM_TITLE,
    ApproveBreakGlassInput,
    BreakGlassSpec,
    BreakGlassState,
    EndBreakGlassInput,
    Grant,
    GrantClosed,
    GrantTarget,
    RequestBreakGlassInput,
)
from pausegate.models.checklist import ItemStatus
from pausegate.models.people import SYSTEM_ACTOR, Actor
from pausegate.models.phase import Phase
from pausegate.models.runbook import AuditSourceSpec, Runbook
from pausegate.models.state import PauseState
from pausegate.models.updates import CompleteItemInput
from pausegate.policy.authority import commander_roles, require_any
from pausegate.policy.authority import names as _names

GRANT_PHASES = frozenset({Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL})
"""After containment (a grant made before the revoke would be revoked with everyone else's access)
and before the resume."""
ROLE_PREFIX = "pausegate_bg_"
EMERGENCY = "emergency self-grant"


def _spec(runbook: Runbook) -> BreakGlassSpec:
    if runbook.break_glass is None:
        raise ActionRefused("no_break_glass", "the runbook allows no break-glass requests (no break_glass section)")
    return runbook.break_glass


def _grants(state: PauseState) -> BreakGlassState:
    return state.break_glass or BreakGlassState()


def _grant(state: PauseState, grant_id: str) -> Grant:
    grant = _grants(state).grant(grant_id)
    if grant is None:
        known = [g.id for g in _grants(state).grants][-20:]
        raise ActionRefused("unknown_grant", f"unknown break-glass grant {grant_id!r} (known: {_names(known)})")
    return grant


def role_name(evidence_key: str, grant_id: str) -> str:
    """The grant's login role: the same for every retry of its steps, distinct across pauses."""
    return ROLE_PREFIX + hashlib.sha256(f"{evidence_key}/{grant_id}".encode()).hexdigest()[:16]


def postgres_log_source(runbook: Runbook, dataset: str) -> AuditSourceSpec | None:
    """The audit source reading the log of the dataset's server: where the grant's statements are sealed from."""
    spec = next(d for d in runbook.datasets if d.name == dataset)
    return next((a for a in runbook.audit_sources
                 if a.kind == "postgres_log" and a.connection == spec.connection), None)


def check_request(runbook: Runbook, state: PauseState, request: RequestBreakGlassInput) -> None:
    """A requester asks for what the dataset holds, for no longer than the runbook allows; an emergency
    self-grant only where the runbook allows one; and only where the statements can be sealed."""
    spec = _spec(runbook)
    if state.phase not in GRANT_PHASES:
        raise ActionRefused("wrong_state", f"cannot request break-glass access while the pause is "
                            f"{state.phase.value} (allowed once containment is done, before the resume)")
    actor = request.actor.for_program(runbook.program.id)
    require_any(actor, spec.requester_roles, "requesting break-glass access")
    dataset = next((d for d in runbook.datasets if d.name == request.dataset), None)
    if dataset is None:
        raise ActionRefused("unknown_dataset", f"unknown dataset {request.dataset!r} "
                            f"(known: {_names([d.name for d in runbook.datasets])})")
    if dataset.tables:
        outside = [t.table for t in request.tables if t.table not in dataset.tables]
        if outside:
            raise ActionRefused("not_in_dataset", f"{_names(outside)} not in dataset {dataset.name!r} "
                                f"(its tables: {_names(dataset.tables)})")
    if request.duration > spec.max_duration:
        raise ActionRefused("too_long", f"duration {request.duration} is over the runbook's maximum "
                            f"{spec.max_duration}")
    if request.emergency and not spec.emergency_self_grant:
        raise ActionRefused("no_emergency", "the runbook allows no emergency self-grant: ask an approver")
    copies = state.containment.copies
    held = set(copies.undecided) if copies is not None else set()
    unknown = [c for c in request.copies if c not in held]
    if unknown:
        raise ActionRefused("unknown_copy", f"{_names(unknown)} is not a copy this pause holds for a decision "
                            f"(copies it holds: {_names(sorted(held)[:20])})")
    if postgres_log_source(runbook, dataset.name) is None:
        raise ActionRefused("no_statement_log", f"no postgres_log audit source reads the log of dataset "
                            f"{dataset.name!r}: the grant's statements could not be sealed")
    if len(_grants(state).grants) >= MAX_GRANTS:
        raise ActionRefused("too_many_grants", f"this pause holds {MAX_GRANTS} grants already")


def check_approval(runbook: Runbook, state: PauseState, request: ApproveBreakGlassInput) -> None:
    """An approver role, never the holder, approves a request still waiting."""
    spec = _spec(runbook)
    grant = _grant(state, request.grant_id)
    if grant.status != "requested":
        raise ActionRefused("not_requested", f"grant {grant.id} is {grant.status}, not waiting for approval")
    if state.phase not in GRANT_PHASES:
        raise ActionRefused("wrong_state", f"cannot start a grant while the pause is {state.phase.value}")
    require_any(request.actor.for_program(runbook.program.id), spec.approver_roles, "approving break-glass access")
    if request.actor.same_person(grant.holder, grant.holder_email):
        raise ActionRefused("separation_of_duties", "nobody approves their own break-glass request")


def check_end(runbook: Runbook, state: PauseState, request: EndBreakGlassInput) -> None:
    """The holder returns a grant early, or the commander takes it back."""
    grant = _grant(state, request.grant_id)
    if grant.status not in ("opening", "open"):
        raise ActionRefused("not_open", f"grant {grant.id} is {grant.status}: there is nothing to end")
    holder = request.actor.same_person(grant.holder, grant.holder_email)
    if not holder:
        require_any(request.actor.for_program(runbook.program.id), commander_roles(runbook),
                    f"ending grant {grant.id} held by someone else")


def check_review(state: PauseState, request: CompleteItemInput) -> None:
    """A grant's review: after the grant ended and its statements were sealed, by someone other than
    its holder and its approver. Any other item: nothing to add."""
    if not request.item_id.startswith(REVIEW_ITEM_PREFIX) or state.break_glass is None:
        return
    grant = next((g for g in state.break_glass.grants if g.review_item == request.item_id), None)
    if grant is None:
        return
    if grant.status != "closed" and grant.status != "refused":
        raise ActionRefused("grant_open", f"grant {grant.id} is {grant.status}: its use is reviewed once it has ended")
    if request.actor.same_person(grant.holder, grant.holder_email):
        raise ActionRefused("separation_of_duties", "the holder of a grant does not review its use")
    if grant.approved_by is not None and request.actor.same_person(grant.approved_by, grant.approved_by_email):
        raise ActionRefused("separation_of_duties", "the approver of a grant does not review its use")


# --- changes to the pause's state ------------------------------------------------------


def request_grant(state: PauseState, runbook: Runbook, request: RequestBreakGlassInput, now: datetime) -> Grant:
    """Record a request; an emergency self-grant starts at once."""
    grants = state.break_glass if state.break_glass is not None else BreakGlassState()
    grant_id = f"g{len(grants.grants) + 1}"
    grant = Grant(id=grant_id, holder=request.actor.id, holder_email=request.actor.email, dataset=request.dataset,
                  tables=list(request.tables), copies=list(request.copies), reason=request.reason,
                  duration=request.duration, emergency=request.emergency, scram_verifier=request.scram_verifier,
                  requested_at=now, role=role_name(state.evidence_key, grant_id),
                  review_item=f"{REVIEW_ITEM_PREFIX}{grant_id}")
    grants.grants.append(grant)
    state.break_glass = grants
    what = [t.table for t in request.tables] + [f"copy {c}" for c in request.copies]
    state.record(now, request.actor.id, "break_glass.requested",
                 f"{grant_id}: {request.dataset} ({', '.join(what)}) for "
                 f"{request.duration}{' (emergency)' if request.emergency else ''}: {request.reason}")
    if request.emergency:
        start_grant(state, runbook, grant, EMERGENCY, now)
    return grant


def start_grant(state: PauseState, runbook: Runbook, grant: Grant, approved_by: str, now: datetime,
                approver_email: str | None = None) -> None:
    """The grant starts: its end is fixed now, and its review is added to the checklist."""
    spec = _spec(runbook)
    grant.status = "opening"
    grant.approved_by = None if approved_by == EMERGENCY else approved_by
    grant.approved_by_email = None if approved_by == EMERGENCY else approver_email
    grant.approved_at = now
    grant.ends_at = now + grant.duration
    state.checklist.append(ItemStatus(id=grant.review_item, title=f"{REVIEW_ITEM_TITLE} ({grant.id})",
                                      roles=list(spec.reviewer_roles), depends_on=[], evidence_required=[]))
    # the checklist changed: approvals name its digest
    if state.approvals:
        state.record(now, SYSTEM_ACTOR, "approvals.voided",
                     f"{len(state.approvals)} approvals voided: break-glass grant {grant.id} started")
    state.approvals = []
    state.record(now, approved_by if approved_by != EMERGENCY else grant.holder, "break_glass.approved",
                 f"{grant.id} for {grant.holder} until {grant.ends_at.isoformat()}"
                 f"{' (emergency self-grant)' if approved_by == EMERGENCY else ''}")


def approve_grant(state: PauseState, runbook: Runbook, request: ApproveBreakGlassInput, now: datetime) -> Grant:
    grant = _grant(state, request.grant_id)
    start_grant(state, runbook, grant, request.actor.id, now, request.actor.email)
    return grant


def end_grant(state: PauseState, request: EndBreakGlassInput, now: datetime) -> Grant:
    grant = _grant(state, request.grant_id)
    grant.status = "ending"
    state.record(now, request.actor.id, "break_glass.ending", f"{grant.id}: {request.reason}")
    return grant


def grant_opened(state: PauseState, grant_id: str, logging: str, now: datetime) -> None:
    grant = _grant(state, grant_id)
    if grant.status == "opening":
        grant.status = "open"
    state.record(now, SYSTEM_ACTOR, "break_glass.opened", f"{grant_id}: role {grant.role}, statements logged "
                 f"by {logging}")


def grant_closed(state: PauseState, closed: GrantClosed, now: datetime) -> bool:
    """The grant's workflow reports its end (once: a repeated report changes nothing). A grant that never
    opened gave no access: its review item is settled by the workflow itself."""
    grant = _grant(state, closed.grant_id)
    if grant.closed is not None:
        return False
    grant.closed = closed
    grant.status = "closed" if closed.opened else "refused"
    if not closed.opened:
        state.record(now, SYSTEM_ACTOR, "break_glass.refused", f"{grant.id}: {closed.reason}", accepted=False)
        item = next(i for i in state.checklist if i.id == grant.review_item)
        item.completed_by, item.completed_at, item.note = SYSTEM_ACTOR, now, "the grant never opened"
        return True
    digest = closed.evidence.sha256[:12] if closed.evidence is not None else "none"
    state.record(now, SYSTEM_ACTOR, "break_glass.closed",
                 f"{grant.id}: ended by {closed.ended_by}, {closed.sessions_terminated} sessions terminated, "
                 f"verified={closed.verified}, {closed.statements} statements sealed ({digest})",
                 accepted=closed.verified)
    return True


def target(state: PauseState, runbook: Runbook, grant: Grant) -> GrantTarget:
    dataset = next(d for d in runbook.datasets if d.name == grant.dataset)
    copies = state.containment.copies
    return GrantTarget(pause_key=state.evidence_key, grant_id=grant.id, role=grant.role,
                       connection=dataset.connection, schema_name=dataset.schema_name, tables=grant.tables,
                       copies=grant.copies, copies_document=copies.document if copies is not None else None,
                       scram_verifier=grant.scram_verifier, audit_source=postgres_log_source(runbook, dataset.name),
                       program=runbook.program.id, dataset=dataset)


def approver_roles(runbook: Runbook) -> Sequence[str]:
    return list(_spec(runbook).approver_roles)


def holder_of(actor: Actor, grant: Grant) -> bool:
    return actor.same_person(grant.holder, grant.holder_email)
