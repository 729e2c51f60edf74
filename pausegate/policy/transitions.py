"""How a pause's state changes: the pure bookkeeping behind every step of the procedure.

The workflow decides *when* (it runs activities, waits, receives updates); these functions
decide *what changes* in the ``PauseState``, given the time. No I/O, no clocks: each takes
``now``, so tests call them directly, without Temporal.
"""

from __future__ import annotations

from datetime import datetime

from pausegate.models.access import DatasetContainment, DatasetRevoked, RestoreResult
from pausegate.models.checklist import ItemStatus
from pausegate.models.copies import CopiesSummary, SettledCopy
from pausegate.models.digests import plan_digest
from pausegate.models.evidence import SnapshotResult
from pausegate.models.limits import MAX_LISTED_IDS, MAX_NOTE
from pausegate.models.people import SYSTEM_ACTOR, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.plan import Approval, PlanRecord
from pausegate.models.runbook import Runbook
from pausegate.models.state import BlockedStep, ExposureSummary, PauseState, ResumeOutcome, TimelineEntry, Waiver
from pausegate.models.steps import ContainmentCheck, HaltAgentsResult, ResumeAgentsResult
from pausegate.models.updates import (
    ApproveInput,
    CompleteItemInput,
    DecommissionInput,
    ProposePlanInput,
    RefusalInput,
    RejectPlanInput,
    RetryStepInput,
    WaiveAgentsInput,
    WaiveResidualInput,
    WaiveStepInput,
)
from pausegate.policy import review

REFUSAL_LOOKBACK = 50
"""Timeline entries searched for a refusal of the same minute to add to (a bound, so a flood stays cheap)."""

# --- the start ----------------------------------------------------------------------


def new_pause(pause_id: str, request: PauseRequest, now: datetime, suffix: str) -> PauseState:
    """The state of a pause just started. ``suffix`` makes incident id and evidence key unique per pause:
    two pauses of one program in the same second must not share them (the fleet deduplicates by
    incident id; evidence is write-once)."""
    runbook = request.runbook
    stamp = f"{now:%Y%m%dT%H%M%SZ}-{suffix}"
    return PauseState(
        pause_id=pause_id,
        incident_id=f"{runbook.program.id}-{stamp}",
        evidence_key=f"{runbook.program.id}/{stamp}",
        program=runbook.program.id,
        phase=Phase.ACTIVE,
        reason=request.reason,
        severity=request.severity,
        commander=request.commander.id,
        started_at=now,
        quorum=runbook.resume_policy.quorum,
        checklist=[
            ItemStatus(id=item.id, title=item.title, roles=list(item.roles), depends_on=list(item.depends_on),
                       evidence_required=list(item.evidence), due_at=now + item.due if item.due else None)
            for item in runbook.checklist
        ],
    )


def enter(state: PauseState, phase: Phase, now: datetime, actor: str, detail: str) -> Phase:
    """Move to ``phase``, on the timeline; returns the phase left."""
    previous = state.phase
    state.phase = phase
    state.record(now, actor, f"state.{phase.value.lower()}", detail)
    return previous


# --- containment ----------------------------------------------------------------------


def start_containment(state: PauseState, runbook: Runbook, now: datetime) -> None:
    c = state.containment
    if c.started_at is None:
        c.started_at = now
        c.datasets_pending = [d.name for d in runbook.datasets]
        c.evidence_pending = [a.name for a in runbook.audit_sources]


def apply_halt(state: PauseState, result: HaltAgentsResult, now: datetime) -> None:
    """What the fleet confirmed: halted agents, and the ones still unconfirmed (listed by id)."""
    agents = state.containment.agents
    first = agents.total == 0
    changed = result.unconfirmed != agents.unconfirmed or result.unconfirmed_ids[:10] != agents.unconfirmed_ids[:10]
    agents.switch_off = result.switch_off
    agents.total = result.total
    agents.halted = result.halted
    agents.not_found = result.not_found
    agents.unconfirmed = result.unconfirmed
    agents.unconfirmed_ids = list(result.unconfirmed_ids[:MAX_LISTED_IDS])
    agents.last_error = None
    if result.switch_off and result.unconfirmed == 0:
        agents.confirmed = True
        state.record(now, SYSTEM_ACTOR, "containment.agents.halted",
                     f"{result.halted} of {result.total} agents halted and confirmed; {agents.waived} waived")
    elif first or changed:
        state.record(now, SYSTEM_ACTOR, "containment.agents.unconfirmed",
                     f"{result.halted} of {result.total} halted; {result.unconfirmed} unconfirmed: "
                     + ", ".join(result.unconfirmed_ids[:10]))
    settle_waivers(state, now)


def agents_waived_whole(state: PauseState, now: datetime) -> None:
    """The commander waived halting while it was blocked: the agents count as settled, not as halted."""
    agents = state.containment.agents
    agents.waived = max(agents.total - agents.halted, agents.unconfirmed)
    agents.confirmed = True
    state.record(now, SYSTEM_ACTOR, "containment.agents.waived",
                 f"halting waived by the commander while blocked; {agents.halted} of {agents.total} halted")


def dataset_waived(state: PauseState, name: str) -> None:
    """The commander waived a blocked dataset: no longer pending, never counted as revoked."""
    c = state.containment
    c.datasets_pending = [d for d in c.datasets_pending if d != name]


def halt_failed(state: PauseState, error: str, now: datetime) -> None:
    state.containment.agents.last_error = error
    state.record(now, SYSTEM_ACTOR, "containment.agents.failed", error, accepted=False)


def waived_ids(state: PauseState) -> list[str]:
    return sorted({a for w in state.waivers for a in w.agent_ids})


def waived_all(state: PauseState) -> bool:
    """Whether the commander's waivers cover every agent still unconfirmed."""
    agents = state.containment.agents
    if agents.confirmed or not agents.switch_off or agents.unconfirmed == 0:
        return False
    if any(w.all_unconfirmed for w in state.waivers):
        return True
    # Only the listed ids can be compared; beyond them a waiver must say "all".
    return agents.unconfirmed <= len(agents.unconfirmed_ids) and set(agents.unconfirmed_ids) <= set(waived_ids(state))


def settle_waivers(state: PauseState, now: datetime) -> None:
    """Agents count as confirmed once every unconfirmed one is waived."""
    if waived_all(state):
        agents = state.containment.agents
        agents.waived = agents.unconfirmed
        agents.confirmed = True
        state.record(now, SYSTEM_ACTOR, "containment.agents.waived",
                     f"{agents.unconfirmed} unconfirmed agents waived by the commander")


def step_failed(state: PauseState, what: str, reason: str, now: datetime) -> None:
    """A containment step that will be tried again: on the timeline, and among the last errors."""
    state.containment.errors = [*state.containment.errors[-19:], f"{what}: {reason}"]
    state.record(now, SYSTEM_ACTOR, f"{what}.failed", reason, accepted=False)


def block_step(state: PauseState, step: str, reason: str, now: datetime) -> None:
    """A step hit an error no retry can mend: it waits for the commander, shown as blocked."""
    c = state.containment
    c.blocked = [b for b in c.blocked if b.step != step] + [BlockedStep(step=step, reason=reason, since=now)]
    state.record(now, SYSTEM_ACTOR, f"{step}.blocked", reason, accepted=False)


def is_blocked(state: PauseState, step: str) -> bool:
    return any(b.step == step for b in state.containment.blocked)


def is_waived_step(state: PauseState, step: str) -> bool:
    return step in state.containment.waived_steps


def retry_step(state: PauseState, request: RetryStepInput, now: datetime) -> str:
    c = state.containment
    c.blocked = [b for b in c.blocked if b.step != request.step]
    state.record(now, request.actor.id, f"{request.step}.retry", "the commander asked to try again")
    return f"{request.step} will be tried again"


def waive_step(state: PauseState, request: WaiveStepInput, now: datetime) -> str:
    c = state.containment
    c.blocked = [b for b in c.blocked if b.step != request.step]
    c.waived_steps = [*c.waived_steps, request.step]
    state.record(now, request.actor.id, f"{request.step}.waived", request.reason)
    return f"{request.step} waived"


def dataset_contained(state: PauseState, result: DatasetContainment, now: datetime) -> None:
    c = state.containment
    name = result.dataset
    c.datasets = [d for d in c.datasets if d.dataset != name] + [result]
    c.datasets_pending = [d for d in c.datasets_pending if d != name]
    if c.access_verified_at is None and not c.datasets_pending and result.access_verified_at is not None:
        c.access_verified_at = max(
            (d.access_verified_at for d in c.datasets if d.access_verified_at is not None), default=None
        )
    state.record(now, SYSTEM_ACTOR, "containment.dataset.revoked",
                 f"{name}: {result.roles_with_access} roles had access by {result.grants_recorded} grants; "
                 f"{result.revoked} revoked and verified; scope {result.scope.sha256[:12]}")
    if result.residual_count and name not in c.residual_waived:
        state.record(now, SYSTEM_ACTOR, "containment.dataset.residual",
                     f"{name}: {result.residual_count} paths no REVOKE can close: " + ", ".join(result.residual[:10]),
                     accepted=False)


def dataset_access_gone(state: PauseState, revoked: DatasetRevoked, now: datetime) -> None:
    """A dataset's revoke committed: its access is gone (verification follows). The first time is
    what the pause records; a retry or a later containment round keeps it."""
    c = state.containment
    name = revoked.dataset
    if name in c.access_gone:
        return
    c.access_gone[name] = revoked.access_gone_at
    state.record(now, SYSTEM_ACTOR, "containment.dataset.access_gone",
                 f"{name}: access cut by {revoked.revoked} statements, {revoked.sessions_terminated} sessions "
                 f"ended; catalog {revoked.snapshot.sha256[:12]}; verifying")
    if c.access_gone_at is None and all(d in c.access_gone for d in c.datasets_pending):
        c.access_gone_at = max(c.access_gone.values())


def residual_settled(state: PauseState) -> bool:
    """Access no REVOKE can close (superusers, owners) is settled once the commander waived it."""
    c = state.containment
    return all(d.residual_count == 0 or d.dataset in c.residual_waived for d in c.datasets)


def evidence_sealed(state: PauseState, result: SnapshotResult, segment: int, now: datetime) -> None:
    state.containment.evidence.append(result)
    state.record(now, SYSTEM_ACTOR, "containment.evidence.sealed",
                 f"{result.source} segment {segment}: {result.bundle.records} records in {result.chunks} chunks, "
                 f"manifest {result.bundle.sha256[:12]}")


def source_sealed(state: PauseState, name: str) -> None:
    c = state.containment
    c.evidence_pending = [e for e in c.evidence_pending if e != name]


def exposure_reported(state: PauseState, summary: ExposureSummary, now: datetime) -> None:
    state.containment.exposure = summary
    state.record(now, SYSTEM_ACTOR, "containment.exposure",
                 f"{summary.readers} roles read the dataset in the exposure window "
                 f"({summary.statements} statements, {summary.failed_reads} refused); "
                 f"report {summary.report.sha256[:12]}")


def copies_found(state: PauseState, summary: CopiesSummary, now: datetime) -> None:
    state.containment.copies = summary
    state.record(now, SYSTEM_ACTOR, "containment.copies.found",
                 f"{summary.found} copies of the data made in the exposure window "
                 f"({summary.left_database} left the database, {summary.possible} possible); "
                 f"document {summary.document.sha256[:12]}")


def copies_contained(state: PauseState, summary: CopiesSummary, now: datetime) -> None:
    """Recorded every round; containment is complete only once no copy is left uncontained."""
    before = state.containment.copies
    earlier = [*before.earlier, before.document] if before is not None else []
    state.containment.copies = summary = summary.model_copy(update={"earlier": earlier})
    left = f"; not contained: {', '.join(summary.uncontained[:10])}" if summary.uncontained else ""
    state.record(now, SYSTEM_ACTOR, "containment.copies",
                 f"{summary.quarantined} of {summary.found} copies quarantined and verified, "
                 f"{summary.left_database} left the database, {summary.possible} possible, {summary.gone} gone; "
                 f"document {summary.document.sha256[:12]}{left}", accepted=not summary.uncontained)


def copies_settled(state: PauseState, settled: list[SettledCopy], now: datetime) -> None:
    counts = {a: sum(1 for s in settled if s.action == a) for a in ("drop", "purge", "keep_quarantined", "waive")}
    state.record(now, SYSTEM_ACTOR, "resume.copies",
                 f"{counts['drop']} copies dropped, {counts['purge']} purged "
                 f"({sum(s.rows_deleted for s in settled)} rows), {counts['keep_quarantined']} kept quarantined, "
                 f"{counts['waive']} left as they are (waived)")


def contained(state: PauseState, now: datetime) -> None:
    state.containment.contained_at = now


def containment_summary(state: PauseState) -> str:
    c = state.containment
    elapsed = (c.contained_at - c.started_at).total_seconds() if c.contained_at and c.started_at else 0.0
    return (f"contained in {elapsed:.1f}s: {c.agents.halted}/{c.agents.total} agents halted "
            f"({c.agents.waived} waived), {len(c.datasets)} datasets revoked, "
            f"{len(c.evidence)} evidence bundles sealed"
            + (f", {c.copies.quarantined} of {c.copies.found} copies quarantined" if c.copies else ""))


# --- review ---------------------------------------------------------------------------


def ready_for_approval(state: PauseState) -> bool:
    """Containment confirmed, every checklist item complete, a plan proposed."""
    return (state.containment.contained_at is not None and all(i.done for i in state.checklist)
            and state.plan is not None)


def review_phase(state: PauseState) -> Phase | None:
    """The phase review should move to, if it should move: approval when ready, back to review when not."""
    ready = ready_for_approval(state)
    if ready and state.phase == Phase.UNDER_REVIEW:
        return Phase.AWAITING_APPROVAL
    if not ready and state.phase == Phase.AWAITING_APPROVAL:
        return Phase.UNDER_REVIEW
    return None


def quorum_on_plan(state: PauseState, runbook: Runbook) -> bool:
    return state.phase == Phase.AWAITING_APPROVAL and review.quorum_met(
        runbook, state.approvals, state.approval_digest)


def quorum_to_decommission(state: PauseState, runbook: Runbook) -> bool:
    return (state.phase in review.REVIEW_PHASES and state.containment.contained_at is not None
            and review.quorum_met(runbook, state.decommission_approvals, None))


def next_due(state: PauseState) -> datetime | None:
    dues = [i.due_at for i in state.checklist if i.due_at and not i.done and not i.reminded]
    return min(dues) if dues else None


def overdue(state: PauseState, now: datetime) -> list[ItemStatus]:
    """Items that just became overdue: marked reminded (once) and put on the timeline."""
    items = [i for i in state.checklist if i.due_at and i.due_at <= now and not i.done and not i.reminded]
    for item in items:
        item.reminded = True
        due = item.due_at.isoformat() if item.due_at else ""
        state.record(now, SYSTEM_ACTOR, "checklist.overdue", f"{item.id} was due {due}")
    return items


def record_refusal(state: PauseState, refusal: RefusalInput, now: datetime) -> None:
    """A refusal on the timeline; refusals of one actor and action within the same minute share an
    entry with a count, so a flood of refused requests cannot grow the timeline."""
    minute = now.replace(second=0, microsecond=0)
    for i in range(len(state.timeline) - 1, max(len(state.timeline) - REFUSAL_LOOKBACK, 0) - 1, -1):
        entry = state.timeline[i]
        if entry.at < minute:
            break
        if not entry.accepted and entry.actor == refusal.actor and entry.action == refusal.action:
            state.timeline[i] = entry.model_copy(update={"count": entry.count + refusal.count,
                                                         "detail": refusal.reason[:MAX_NOTE]})
            return
    state.timeline.append(TimelineEntry(at=now, actor=refusal.actor, action=refusal.action,
                                        detail=refusal.reason[:MAX_NOTE], accepted=False, count=refusal.count))


def void_approvals(state: PauseState, now: datetime, why: str) -> None:
    if state.approvals:
        state.record(now, SYSTEM_ACTOR, "approvals.voided", f"{len(state.approvals)} approvals voided: {why}")
    state.approvals = []


# --- updates: each returns the receipt's message --------------------------------------


def complete_item(state: PauseState, request: CompleteItemInput, now: datetime) -> str:
    item = next(i for i in state.checklist if i.id == request.item_id)
    amended = item.done
    item.completed_by = request.actor.id
    item.completed_at = now
    item.evidence = list(request.evidence)
    item.note = request.note
    state.record(now, request.actor.id, "checklist.amended" if amended else "checklist.completed",
                 f"{item.id} with evidence " + ", ".join(f"{e.name}={e.uri}" for e in request.evidence))
    void_approvals(state, now, f"checklist item {item.id} changed")
    return f"item {item.id} complete"


def propose_plan(state: PauseState, request: ProposePlanInput, now: datetime) -> str:
    digest = plan_digest(request.plan)
    state.plan = PlanRecord(plan=request.plan, plan_digest=digest, proposed_by=request.actor.id,
                            proposed_by_email=request.actor.email, proposed_at=now)
    state.record(now, request.actor.id, "plan.proposed",
                 f"plan {digest[:12]}: agents {request.plan.agents.mode}, {len(request.plan.grants)} grants")
    void_approvals(state, now, "a new plan was proposed")
    return "plan proposed"


def approve_plan(state: PauseState, request: ApproveInput, now: datetime) -> str:
    state.approvals.append(Approval(actor_id=request.actor.id, role=request.role, digest=request.digest, at=now,
                                    comment=request.comment, email=request.actor.email))
    count = f"{len(state.approvals)} of {state.quorum}"
    state.record(now, request.actor.id, "plan.approved", f"as {request.role}, digest {request.digest[:12]} ({count})")
    return f"approval {count} recorded"


def reject_plan(state: PauseState, request: RejectPlanInput, now: datetime) -> str:
    state.record(now, request.actor.id, "plan.rejected", request.reason)
    state.plan = None
    void_approvals(state, now, "the plan was rejected")
    return "plan rejected"


def waive_agents(state: PauseState, request: WaiveAgentsInput, now: datetime) -> str:
    state.waivers.append(Waiver(agent_ids=list(request.agent_ids), all_unconfirmed=request.all_unconfirmed,
                                reason=request.reason, by=request.actor.id, at=now))
    what = "all unconfirmed agents" if request.all_unconfirmed else ", ".join(request.agent_ids[:10])
    state.record(now, request.actor.id, "containment.agents.waiver", f"{what}: {request.reason}")
    return "waiver recorded"


def waive_residual(state: PauseState, request: WaiveResidualInput, now: datetime) -> str:
    state.containment.residual_waived = [*state.containment.residual_waived, request.dataset]
    state.record(now, request.actor.id, "containment.dataset.residual_waived", f"{request.dataset}: {request.reason}")
    return "residual access waived"


def vote_decommission(state: PauseState, request: DecommissionInput, now: datetime) -> str:
    state.decommission_approvals.append(Approval(actor_id=request.actor.id, role=request.role, digest="decommission",
                                                 at=now, comment=request.reason, email=request.actor.email))
    state.record(now, request.actor.id, "decommission.voted",
                 f"as {request.role} ({len(state.decommission_approvals)} of {state.quorum}): {request.reason}")
    return "decommission vote recorded"


# --- resume ---------------------------------------------------------------------------


def resume_problems(check: ContainmentCheck) -> list[str]:
    """Why containment no longer holds, one phrase per problem."""
    problems = []
    if not check.agents.switch_off:
        problems.append("the program switch is on")
    if check.agents.collecting:
        problems.append(f"{check.agents.collecting} agents collecting: " + ", ".join(check.agents.collecting_ids[:5]))
    problems += [f"dataset {d.dataset} reopened: " + ", ".join(d.violations[:5]) for d in check.datasets
                 if not d.contained]
    return problems


def resumed(state: PauseState, restore: list[RestoreResult], agents: ResumeAgentsResult, now: datetime) -> None:
    """The resume's outcome as the fleet and the database confirmed it."""
    state.resumed = ResumeOutcome(
        at=now, switch_on=agents.switch_on, collecting=agents.collecting, resumed_individually=agents.resumed,
        unconfirmed=agents.unconfirmed, grants_restored=sum(r.granted for r in restore),
        grants_verified=all(r.verified for r in restore),
    )
    state.resume_error = None


def resume_failed(state: PauseState, runbook: Runbook, error: str, now: datetime) -> None:
    """A resume failed part-way: the plan is void, and containment starts again, which undoes whatever
    the resume had restored (grants revoked again, agents halted again, both verified)."""
    state.resume_error = error
    state.record(now, SYSTEM_ACTOR, "resume.failed", f"{error}; undoing what was restored", accepted=False)
    state.plan = None
    void_approvals(state, now, "the resume failed")
    c = state.containment
    c.agents.confirmed = False
    c.agents.switch_off = False
    c.datasets_pending = [d.name for d in runbook.datasets]
    c.contained_at = None


def refuse_resume(state: PauseState, runbook: Runbook, check: ContainmentCheck, now: datetime) -> None:
    """Containment drifted before resume: approvals are void and containment starts again (the
    recorded scope is reused; revocation and halting are idempotent)."""
    state.record(now, SYSTEM_ACTOR, "resume.refused",
                 "containment no longer holds: " + "; ".join(resume_problems(check)), accepted=False)
    void_approvals(state, now, "containment no longer held at resume")
    # What the fleet says now, so earlier waivers cannot confirm agents before the next halt does.
    state.containment.agents.switch_off = check.agents.switch_off
    state.containment.agents.confirmed = False
    state.containment.datasets_pending = [d.name for d in runbook.datasets]
    state.containment.contained_at = None
