"""What a pause shows a caller who holds none of its review roles (``authority.review_roles``).

The leak was an insider problem: who had access, who keeps, loses or gains it, which paths no REVOKE
closed and who read the data are themselves sensitive, and so is anything people wrote (a reason, a
plan's summary and conditions, a comment, a note), any error text (it quotes roles, tables and
hosts), agent ids (they name employees), e-mail addresses and where the evidence lies.

So the redacted view is built from an allow-list, field by field: a field this module does not name
is left at its empty value, and a field added to the pause later stays hidden until it is named
here. What is shown:

- the pause: program, pause and incident ids, phase, severity, commander, start, quorum, how many
  resumes were begun and runs made;
- containment as times and counts: the switch, agents (counts, never their ids or the fleet's
  error), each dataset's counts, verification and times, the datasets pending or waived, each
  audit source's window and counts, the data stop, blocked and waived steps by name and time;
- the checklist as the runbook writes it, with who completed each item and when (never its
  evidence or note);
- the plan: who proposed it and when, its digest, how agents restart (ids replaced by
  ``redacted``: the count stays), the data types collected, whether consent is required, its data
  actions (a purge's subjects replaced by ``redacted``), each copy's decision (a waiver's reason
  replaced by ``redacted``), and per dataset how many roles lose, keep and gain access;
- approvals and decommission votes: who, as which role, on which digest, when; the commander's
  waivers: who, when, how many agents; the timeline: when, who, what, accepted or refused;
- the resume's outcome (times and counts).

Never shown: the reason, the plan's summary, conditions and grants, the resume conditions' record,
agent ids, error texts, comments and notes, e-mail addresses, evidence keys and references
(a reference the model requires keeps its counts and becomes ``REDACTED_REF``), the exposure, copies,
residual paths, who saw what, archived timeline documents and the report. ``redacted`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from pausegate.models.access import DatasetContainment
from pausegate.models.checklist import ItemStatus
from pausegate.models.conditions import CollectionPlan
from pausegate.models.data_actions import DataAction, PurgeSubjects
from pausegate.models.data_stop import DataStop
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.plan import AgentSelection, Approval, CopyDecision, PlanDiffSummary, PlanRecord, ResumePlan
from pausegate.models.state import (
    AgentsProgress,
    BlockedStep,
    ContainmentProgress,
    PauseState,
    ResumeOutcome,
    TimelineEntry,
    Waiver,
)

REDACTED_SUBJECT = "redacted"
"""Stands for each name a count is kept of (a purge's subjects, the agents a plan restarts)."""
REDACTED_REF = EvidenceRef(uri="", sha256="0" * 64)
"""Stands for a reference the model requires: no location, no digest."""


def _ref(ref: EvidenceRef) -> EvidenceRef:
    return REDACTED_REF.model_copy(update={"records": ref.records, "size_bytes": ref.size_bytes})


def redact_items(items: Iterable[ItemStatus]) -> list[ItemStatus]:
    """Checklist items as the runbook writes them, with who completed each and when."""
    return [
        ItemStatus(id=i.id, title=i.title, roles=list(i.roles), depends_on=list(i.depends_on),
                   evidence_required=list(i.evidence_required), due_at=i.due_at, completed_by=i.completed_by,
                   completed_at=i.completed_at, reminded=i.reminded)
        for i in items
    ]


def _agents(a: AgentsProgress) -> AgentsProgress:
    return AgentsProgress(switch_off=a.switch_off, total=a.total, halted=a.halted, unconfirmed=a.unconfirmed,
                          not_found=a.not_found, waived=a.waived, attempts=a.attempts, confirmed=a.confirmed,
                          switch_off_at=a.switch_off_at)


def _dataset(d: DatasetContainment) -> DatasetContainment:
    return DatasetContainment(dataset=d.dataset, scope=_ref(d.scope), grants_recorded=d.grants_recorded,
                              roles_with_access=d.roles_with_access, revoked=d.revoked, verified=d.verified,
                              residual_count=d.residual_count, sessions_terminated=d.sessions_terminated,
                              access_gone_at=d.access_gone_at, access_verified_at=d.access_verified_at)


def _containment(c: ContainmentProgress) -> ContainmentProgress:
    stop = c.data_stop
    return ContainmentProgress(
        started_at=c.started_at,
        contained_at=c.contained_at,
        agents=_agents(c.agents),
        datasets=[_dataset(d) for d in c.datasets],
        datasets_pending=list(c.datasets_pending),
        residual_waived=list(c.residual_waived),
        evidence=[SnapshotResult(source=e.source, window_start=e.window_start, window_end=e.window_end,
                                 bundle=_ref(e.bundle), chunks=e.chunks) for e in c.evidence],
        evidence_pending=list(c.evidence_pending),
        data_stop=None if stop is None else DataStop(
            switch_off_at=stop.switch_off_at, checked_at=stop.checked_at, rows_after=stop.rows_after,
            last_row_at=stop.last_row_at, last_row_before=stop.last_row_before),
        blocked=[BlockedStep(step=b.step, reason="", since=b.since) for b in c.blocked],
        waived_steps=list(c.waived_steps),
        access_gone=dict(c.access_gone),
        access_gone_at=c.access_gone_at,
        access_verified_at=c.access_verified_at,
    )


def _action(action: DataAction) -> DataAction:
    # Whose rows a purge deletes names people: the count stays, the names go.
    if isinstance(action, PurgeSubjects):
        return action.model_copy(update={"subjects": [REDACTED_SUBJECT] * len(action.subjects)})
    return action


def _plan(record: PlanRecord | None) -> PlanRecord | None:
    if record is None:
        return None
    p = record.plan
    agents = AgentSelection(mode=p.agents.mode, agent_ids=[REDACTED_SUBJECT] * len(p.agents.agent_ids))
    plan = ResumePlan(
        agents=agents,
        collection=None if p.collection is None else CollectionPlan(data_types=list(p.collection.data_types)),
        consent_required=p.consent_required,
        data_actions=[_action(a) for a in p.data_actions],
        copies=[CopyDecision(copy_id=d.copy_id, action=d.action, data_action=d.data_action,
                             reason=REDACTED_SUBJECT if d.action == "waive" else "") for d in p.copies],
    )
    diff = [PlanDiffSummary(dataset=d.dataset, loses=d.loses, keeps=d.keeps, gains=d.gains) for d in record.diff]
    return PlanRecord(plan=plan, plan_digest=record.plan_digest, proposed_by=record.proposed_by,
                      proposed_at=record.proposed_at, diff=diff)


def _approvals(approvals: Iterable[Approval]) -> list[Approval]:
    return [Approval(actor_id=a.actor_id, role=a.role, digest=a.digest, at=a.at) for a in approvals]


def _outcome(r: ResumeOutcome | None) -> ResumeOutcome | None:
    if r is None:
        return None
    return ResumeOutcome(at=r.at, switch_on=r.switch_on, collecting=r.collecting,
                         resumed_individually=r.resumed_individually, unconfirmed=r.unconfirmed,
                         grants_restored=r.grants_restored, grants_verified=r.grants_verified)


def redact_state(state: PauseState) -> PauseState:
    """The pause as a caller without a review role sees it: only what the module's list names."""
    return PauseState(
        pause_id=state.pause_id,
        incident_id=state.incident_id,
        evidence_key="",
        program=state.program,
        phase=state.phase,
        reason="",
        severity=state.severity,
        commander=state.commander,
        started_at=state.started_at,
        quorum=state.quorum,
        containment=_containment(state.containment),
        checklist=redact_items(state.checklist),
        plan=_plan(state.plan),
        approvals=_approvals(state.approvals),
        decommission_approvals=_approvals(state.decommission_approvals),
        waivers=[Waiver(agent_ids=[REDACTED_SUBJECT] * len(w.agent_ids), all_unconfirmed=w.all_unconfirmed,
                        reason="", by=w.by, at=w.at) for w in state.waivers],
        timeline=[TimelineEntry(at=e.at, actor=e.actor, action=e.action, accepted=e.accepted, count=e.count)
                  for e in state.timeline],
        resumed=_outcome(state.resumed),
        resume_attempts=state.resume_attempts,
        run_count=state.run_count,
    )
