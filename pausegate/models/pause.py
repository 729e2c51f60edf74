"""A pause as data: its request, state, progress, checklist, plan, approvals and timeline.

Everything here may enter workflow history, so it holds references, digests and
counts only, never collected data, audit-log content, DSNs or secrets.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, computed_field, model_validator

from pausegate.models.access import DatasetCheck, DatasetContainment, DatasetRevoked, GrantSpec, RestoreResult
from pausegate.models.base import Model, Mutable
from pausegate.models.conditions import CollectionPlan, ConsentSource, ResumeConditions
from pausegate.models.data_actions import DataAction
from pausegate.models.data_stop import DataStop
from pausegate.models.digests import approval_digest, checklist_digest
from pausegate.models.evidence import SHA256_HEX, EvidenceRef, SnapshotResult
from pausegate.runbook.model import AuditSourceSpec, DatasetSpec, Runbook

MAX_LISTED_IDS = 200  # ids listed in state; counts carry the rest
MAX_NOTE = 2000
# Temporal warns at 256 KB per payload and refuses 2 MB: a plan must fit well inside with the rest of an update.
MAX_PLAN_BYTES = 256 * 1024

AgentId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Condition = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class Phase(StrEnum):
    """Where a pause is in its procedure (the state machine's states)."""

    ACTIVE = "ACTIVE"
    CONTAINING = "CONTAINING"
    UNDER_REVIEW = "UNDER_REVIEW"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    RESUMING = "RESUMING"
    RESUMED = "RESUMED"
    DECOMMISSIONED = "DECOMMISSIONED"


OPEN_PHASES = frozenset({Phase.ACTIVE, Phase.CONTAINING, Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL, Phase.RESUMING})

SYSTEM_ACTOR = "pausegate"
"""The actor of every step the workflow takes by itself (timeline entries, transitions)."""


class Severity(StrEnum):
    """How bad the incident is (informs notifications; not policy)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Actor(Model):
    """A verified person and the roles they act with. Set by the API, never by a request body.

    ``id`` names the identity in its namespace: ``local:<name>`` for a local user, ``oidc:<issuer>#<sub>``
    for an OIDC subject, so a local user can never hold an OIDC subject's id or the reverse, and every
    rule that compares people (separation of duties, one approval each) compares these ids.

    ``roles`` hold in every program; ``program_roles`` only in the program they are listed under. The
    API resolves them for the program a request acts on (``for_program``) before any rule runs, so the
    actor an update carries has the roles effective for that program in ``roles`` and nothing else.
    """

    id: str = Field(min_length=1, max_length=512)
    roles: list[str] = Field(default_factory=list)
    program_roles: dict[str, list[str]] = Field(
        default_factory=dict, description="Roles held for one program only, by program id (not yet resolved)."
    )
    email: str | None = Field(
        default=None,
        max_length=320,
        description="The identity provider's verified email (OIDC email_verified), lower-cased: two identities "
        "with the same one are one person to the quorum.",
    )

    def has_any(self, roles: list[str]) -> bool:
        """Whether the actor holds at least one of ``roles``."""
        return any(r in self.roles for r in roles)

    def for_program(self, program: str) -> Actor:
        """This actor with the roles effective for ``program``: the global roles and the ones held for
        ``program``; roles held for other programs are dropped (they count nowhere else, and the pause
        of one program has no business knowing who holds what in another). Resolving twice changes nothing."""
        if not self.program_roles:
            return self
        roles = sorted({*self.roles, *self.program_roles.get(program, [])})
        return self.model_copy(update={"roles": roles, "program_roles": {}})

    def same_person(self, other_id: str, other_email: str | None) -> bool:
        """Whether the identity ``other_id`` (with its verified email, if any) is this actor: the same
        id, or the same verified email."""
        return other_id == self.id or (self.email is not None and other_email == self.email)


class PauseRequest(Model):
    """What the commander asked for when pulling the kill switch."""

    program: str
    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    severity: Severity = Severity.HIGH
    commander: Actor
    runbook: Runbook

    @model_validator(mode="after")
    def _program_matches(self) -> PauseRequest:
        if self.program != self.runbook.program.id:
            raise ValueError(f"runbook is for program {self.runbook.program.id!r}, not {self.program!r}")
        return self


class Tuning(Model):
    """Timing knobs of the workflow (tests shrink them)."""

    halt_retry_initial_seconds: float = 5.0
    halt_retry_max_seconds: float = 300.0
    continue_as_new_after_events: int = 5000
    continue_as_new_after_updates: int = 1000
    timeline_keep: int = Field(default=200, ge=10, description="Timeline entries kept in state; older are archived.")
    activity_heartbeat_seconds: float = 5.0
    workflow_task_timeout_seconds: float = Field(
        default=5.0,
        ge=1.0,
        le=120.0,
        description="How long a workflow task may stay with a worker: a worker killed while holding one delays "
        "the pause by up to this long (Temporal's default is 10 s).",
    )
    urgent_task_queue: str | None = Field(
        default=None,
        description="Task queue of the steps that stop harm (switch, halts, revocation); default: the pause's "
        "task queue + '-urgent'.",
    )


# --- progress -----------------------------------------------------------------------


class Waiver(Model):
    """An unconfirmed agent the commander chose to stop waiting for."""

    agent_ids: list[str]
    all_unconfirmed: bool = False
    reason: str
    by: str
    at: datetime


class AgentsProgress(Mutable):
    """Halting the program's agents."""

    switch_off: bool = False
    total: int = 0
    halted: int = 0
    unconfirmed: int = 0
    unconfirmed_ids: list[str] = Field(default_factory=list, description=f"First {MAX_LISTED_IDS} only.")
    not_found: int = 0
    waived: int = 0
    attempts: int = 0
    confirmed: bool = False
    last_error: str | None = None
    switch_off_at: datetime | None = Field(default=None, description="When the fleet turned the program switch off.")


class ExposureSummary(Model):
    """Who read the dataset during the exposure window, as counts; the names are in the evidence."""

    readers: int = Field(description="Login roles with at least one successful read (directly or through a view "
                         "or routine).")
    objects: int
    statements: int
    failed_reads: int
    report: EvidenceRef
    possible_readers: int = Field(default=0, description="Other roles whose statements possibly read the data "
                                  "(dynamic SQL, DO blocks, ...).")
    unparsed: int = Field(default=0, description="Sealed statements the parser could not read (kept as evidence).")
    data_subjects: int | None = Field(
        default=None, description="People whose records were readable in the exposure window (runbook data_subjects)."
    )
    data_subjects_list: EvidenceRef | None = Field(
        default=None, description="The owner-only document naming them (only its digest is here)."
    )


class BlockedStep(Model):
    """A containment step that hit an error no retry can mend (an unknown connection, a program the
    fleet does not know): it waits for the commander to retry it (after fixing the cause) or waive it."""

    step: str = Field(description="e.g. containment.dataset.telemetry, containment.agents")
    reason: str
    since: datetime


class ContainmentProgress(Mutable):
    """The three containment actions."""

    started_at: datetime | None = None
    contained_at: datetime | None = None
    agents: AgentsProgress = Field(default_factory=AgentsProgress)
    datasets: list[DatasetContainment] = Field(default_factory=list)
    datasets_pending: list[str] = Field(default_factory=list)
    residual_waived: list[str] = Field(default_factory=list, description="Datasets whose residual access is waived.")
    evidence: list[SnapshotResult] = Field(default_factory=list)
    evidence_pending: list[str] = Field(default_factory=list)
    exposure: ExposureSummary | None = None
    data_stop: DataStop | None = Field(default=None, description="Rows collected after the switch went off.")
    errors: list[str] = Field(default_factory=list)
    blocked: list[BlockedStep] = Field(default_factory=list, description="Steps waiting for the commander.")
    waived_steps: list[str] = Field(default_factory=list, description="Blocked steps the commander waived.")
    access_gone: dict[str, datetime] = Field(
        default_factory=dict, description="Dataset -> when its revoke committed (verification may still run)."
    )
    access_gone_at: datetime | None = Field(default=None, description="When access to every dataset was gone.")
    access_verified_at: datetime | None = Field(
        default=None, description="When the database had confirmed, for every dataset, that access is gone."
    )

    @property
    def access_revoked(self) -> bool:
        waived = any(s.startswith("containment.dataset.") for s in self.waived_steps)
        return not self.datasets_pending and not waived and all(d.verified for d in self.datasets)

    @property
    def evidence_sealed(self) -> bool:
        return not self.evidence_pending


# --- review --------------------------------------------------------------------------


class EvidenceAttachment(Model):
    """Evidence a reviewer attaches to a checklist item: a reference and a digest, not content."""

    name: str = Field(min_length=1, max_length=100, description="Which required evidence this is.")
    uri: str = Field(min_length=1, max_length=1000)
    sha256: str | None = Field(default=None, pattern=SHA256_HEX)
    note: str = Field(default="", max_length=MAX_NOTE)


class ItemStatus(Mutable):
    """A checklist item and its completion."""

    id: str
    title: str
    roles: list[str]
    depends_on: list[str]
    evidence_required: list[str]
    due_at: datetime | None = None
    completed_by: str | None = None
    completed_at: datetime | None = None
    evidence: list[EvidenceAttachment] = Field(default_factory=list)
    note: str = ""
    reminded: bool = False

    @property
    def done(self) -> bool:
        return self.completed_by is not None


class AgentSelection(Model):
    """Which agents a resume plan restarts."""

    mode: Literal["all", "none", "listed", "consented"] = Field(
        default="all", description="consented: every agent of an employee who consented (runbook consent).")
    agent_ids: list[AgentId] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _listed(self) -> AgentSelection:
        if self.mode == "listed" and not self.agent_ids:
            raise ValueError("mode 'listed' needs agent_ids")
        if self.mode != "listed" and self.agent_ids:
            raise ValueError(f"agent_ids are only meaningful with mode 'listed', not {self.mode!r}")
        return self


class ResumePlan(Model):
    """What resuming means: which agents restart, which narrowed grants come back, on what conditions."""

    agents: AgentSelection = Field(default_factory=AgentSelection)
    grants: list[GrantSpec] = Field(default_factory=list, max_length=1000)
    conditions: list[Condition] = Field(default_factory=list, max_length=50)
    summary: str = Field(default="", max_length=MAX_NOTE)
    collection: CollectionPlan | None = Field(default=None, description="The data types agents capture again.")
    consent_required: bool = Field(default=False, description="Resume only consenting employees' agents.")
    data_actions: list[DataAction] = Field(default_factory=list, max_length=50)

    @property
    def consent_only(self) -> bool:
        """Whether only agents of employees who consented may collect."""
        return self.consent_required or self.agents.mode == "consented"

    @model_validator(mode="after")
    def _fits_in_history(self) -> ResumePlan:
        size = len(self.model_dump_json())
        if size > MAX_PLAN_BYTES:
            raise ValueError(
                f"the plan is {size} bytes; at most {MAX_PLAN_BYTES} fit in workflow history "
                "(grant to group roles rather than listing many)"
            )
        return self


class PlanDiffSummary(Model):
    """What a plan changes against the recorded exposure scope of one dataset (full diff: evidence)."""

    dataset: str
    loses: int = Field(description="Roles that could read before and will not.")
    keeps: int
    gains: int
    loses_roles: list[str] = Field(default_factory=list, description=f"First {MAX_LISTED_IDS} only.")
    keeps_roles: list[str] = Field(default_factory=list)
    gains_roles: list[str] = Field(default_factory=list)
    diff: EvidenceRef | None = None


class PlanRecord(Model):
    """A proposed plan and the digest approvals bind to."""

    plan: ResumePlan
    plan_digest: str = Field(pattern=SHA256_HEX, description="Digest of the plan alone.")
    proposed_by: str
    proposed_at: datetime
    diff: list[PlanDiffSummary] = Field(default_factory=list, description="Against the pre-incident scope.")


class Approval(Model):
    """One approver's yes, bound to a digest of plan + checklist + evidence."""

    actor_id: str
    role: str
    digest: str
    at: datetime
    comment: str = ""
    email: str | None = Field(default=None, description="The approver's verified email, when the identity has one.")


class TimelineEntry(Model):
    """Who did what, when; refusals included."""

    at: datetime
    actor: str
    action: str
    detail: str = ""
    accepted: bool = True
    count: int = Field(default=1, ge=1, description="Refusals of one actor and action within a minute share one entry.")


# --- update inputs (the API sets ``actor``; a request body never does) ----------------


class CompleteItemInput(Model):
    """Complete (or amend) a checklist item."""

    actor: Actor
    item_id: str = Field(min_length=1, max_length=100)
    evidence: list[EvidenceAttachment] = Field(default_factory=list, max_length=50)
    note: str = Field(default="", max_length=MAX_NOTE)


class ProposePlanInput(Model):
    """Propose (or replace) the resume plan; replaces approvals."""

    actor: Actor
    plan: ResumePlan


class ApproveInput(Model):
    """Approve the current plan, naming the digest the approver reviewed."""

    actor: Actor
    role: str = Field(description="Which approver role the actor approves as.")
    digest: str = Field(pattern=SHA256_HEX)
    comment: str = Field(default="", max_length=MAX_NOTE)


class RejectPlanInput(Model):
    """Reject the current plan; it and its approvals are void."""

    actor: Actor
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class WaiveAgentsInput(Model):
    """The commander stops waiting for unconfirmed agents."""

    actor: Actor
    agent_ids: list[AgentId] = Field(default_factory=list, max_length=5000)
    all_unconfirmed: bool = False
    reason: str = Field(min_length=1, max_length=MAX_NOTE)

    @model_validator(mode="after")
    def _what(self) -> WaiveAgentsInput:
        if not self.agent_ids and not self.all_unconfirmed:
            raise ValueError("name agent_ids or set all_unconfirmed")
        return self


class WaiveResidualInput(Model):
    """The commander accepts access to a dataset that no REVOKE can close (superusers, owners)."""

    actor: Actor
    dataset: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class RetryStepInput(Model):
    """The commander asks a blocked containment step to run again (after fixing its cause)."""

    actor: Actor
    step: str = Field(min_length=1, max_length=200)


class WaiveStepInput(Model):
    """The commander stops waiting for a blocked containment step, with a reason."""

    actor: Actor
    step: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class DecommissionInput(Model):
    """Vote to end the program for good (counts toward the same quorum)."""

    actor: Actor
    role: str
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class UpdateReceipt(Model):
    """What an accepted update returns."""

    phase: Phase
    message: str
    digest: str | None = None


# --- activity inputs and outputs -------------------------------------------------------


class HaltAgentsInput(Model):
    """Halt every agent of a program (switch first, then bulk batches)."""

    connection: str
    program: str
    incident_id: str
    reason: str
    batch_size: int
    concurrency: int
    exclude_ids: list[str] = Field(default_factory=list, description="Waived agents.")


class HaltAgentsResult(Model):
    """Halting as the fleet confirmed it."""

    switch_off: bool
    total: int
    halted: int
    unconfirmed: int
    unconfirmed_ids: list[str]
    not_found: int = 0
    switch_off_at: datetime | None = None


class ResumeAgentsInput(Model):
    """Resume agents under an approved plan."""

    connection: str
    program: str
    incident_id: str
    selection: AgentSelection
    batch_size: int
    concurrency: int
    consent: ConsentSource | None = Field(default=None, description="Resume only consenting employees' agents.")


class ResumeAgentsResult(Model):
    """Agents resumed under an approved plan."""

    switch_on: bool
    resumed: int = Field(description="Agents resumed one by one and confirmed (the ones halted individually).")
    unconfirmed: int
    unconfirmed_ids: list[str]
    collecting: int = Field(default=0, description="Agents the fleet reports collecting once the resume is done.")


class ResumeOutcome(Model):
    """What the resume did, as the fleet and the database confirmed it: the facts after RESUMED."""

    at: datetime
    switch_on: bool
    collecting: int = Field(description="Agents the fleet confirmed collecting again (switch and individual resumes).")
    resumed_individually: int
    unconfirmed: int = Field(description="Agents to resume when they return.")
    grants_restored: int
    grants_verified: bool


class AgentsCheck(Model):
    """Whether every agent of the program is silent (checked again before resuming)."""

    switch_off: bool
    collecting: int
    collecting_ids: list[str]


class ContainDatasetInput(Model):
    """Record, revoke and verify one dataset."""

    pause_key: str = Field(description="The pause's evidence key: <program>/<started>-<suffix>.")
    dataset: DatasetSpec


class VerifyDatasetInput(Model):
    """Derive the exposure scope from the revoke's catalog snapshot, record it, and verify one dataset."""

    pause_key: str
    dataset: DatasetSpec
    revoked: DatasetRevoked


class CheckDatasetInput(Model):
    """Check that a contained dataset is still contained."""

    pause_key: str
    dataset: DatasetSpec
    scope_sha256: str | None = Field(default=None, pattern=SHA256_HEX, description="The scope's recorded digest.")


class RestoreGrantsInput(Model):
    """Restore a plan's grants on one dataset."""

    pause_key: str
    dataset: DatasetSpec
    grants: list[GrantSpec]


class SnapshotInput(Model):
    """Seal one audit source's records of part of the exposure window."""

    pause_key: str
    program: str
    source: AuditSourceSpec
    segment: int = Field(ge=0, description="0: up to the pause; 1: from the pause until access was revoked.")
    tables: list[str] = Field(description="schema.table names whose reads the source should keep.")
    window_start: datetime
    window_end: datetime
    datasets: list[DatasetSpec] = Field(
        default_factory=list,
        description="The runbook's datasets: their recorded scopes (views, routines) and whole schemas decide "
        "which log lines are kept. Empty (pauses started before it was passed): derived from tables.",
    )


class ExposureReportInput(Model):
    """Build the 'who saw what' report from sealed database audit bundles."""

    pause_key: str
    bundles: list[str] = Field(description="Evidence keys of sealed postgres_log bundles.")
    datasets: list[DatasetSpec] = Field(
        default_factory=list,
        description="The runbook's datasets (scopes, data-subject columns). Empty: the scopes recorded under the "
        "pause's key.",
    )
    window_start: datetime | None = None
    window_end: datetime | None = Field(default=None, description="When access was revoked: rows collected later "
                                        "were never exposed. None: when the report is made.")


class ReportInput(Model):
    """Write the final report of a pause to the evidence store."""

    pause_key: str
    status: PauseState
    restore: list[RestoreResult] = Field(default_factory=list)
    resume: ResumeAgentsResult | None = None
    evidence_signing_key_sha256: str | None = Field(
        default=None, pattern=SHA256_HEX,
        description="The key the evidence verifies with; filled in by the activity that stores the report.",
    )


class ArchiveTimelineInput(Model):
    """Move older timeline entries into evidence before continue-as-new."""

    pause_key: str
    sequence: int
    entries: list[TimelineEntry]


class NotifyInput(Model):
    """Tell a webhook about a state change or a reminder."""

    connection: str
    pause_id: str
    program: str
    event: str
    phase: Phase
    text: str


class CheckPlanInput(Model):
    """Check a plan's grants on one dataset against the live database before it is proposed."""

    dataset: DatasetSpec
    grants: list[GrantSpec]


class ContainmentCheck(Model):
    """Both halves of 'containment still holds'."""

    agents: AgentsCheck
    datasets: list[DatasetCheck]

    @property
    def holds(self) -> bool:
        return (
            self.agents.switch_off
            and self.agents.collecting == 0
            and all(d.contained for d in self.datasets)
        )


class DiffPlanInput(Model):
    """Compare a plan's grants with the recorded exposure scope of one dataset."""

    pause_key: str
    dataset: DatasetSpec
    plan_digest: str
    grants: list[GrantSpec]
    scope_sha256: str | None = Field(default=None, pattern=SHA256_HEX, description="The scope's recorded digest.")


class RefusalInput(Model):
    """A refused action, recorded in the timeline (the only trace a refusal leaves)."""

    actor: str = Field(max_length=200)
    action: str = Field(max_length=100)
    reason: str = Field(max_length=MAX_NOTE)
    count: int = Field(default=1, ge=1, le=1_000_000, description="Refusals the API coalesced into this one.")


class AppliedUpdate(Model):
    """An update already applied, remembered by id so a retry after continue-as-new is not applied twice."""

    id: str
    receipt: UpdateReceipt


class PauseWorkflowInput(Model):
    """Start (or continue) a pause."""

    request: PauseRequest
    tuning: Tuning = Field(default_factory=Tuning)
    state: PauseState | None = Field(default=None, description="Carried by continue-as-new; None at the start.")


class PauseState(Mutable):
    """Everything a pause is: carried whole by the workflow and by continue-as-new, returned by the
    status query, extended by the API's view. The rules that change it live in ``pausegate.policy``."""

    pause_id: str
    incident_id: str
    evidence_key: str = Field(description="Where its evidence is filed in the store: <program>/<started>-<suffix>.")
    program: str
    phase: Phase
    reason: str
    severity: Severity
    commander: str
    started_at: datetime
    quorum: int
    containment: ContainmentProgress = Field(default_factory=lambda: ContainmentProgress())
    checklist: list[ItemStatus]
    plan: PlanRecord | None = None
    approvals: list[Approval] = Field(default_factory=list)
    decommission_approvals: list[Approval] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    timeline_archived: list[EvidenceRef] = Field(default_factory=list)
    report: EvidenceRef | None = None
    resume_error: str | None = Field(default=None, description="Why the last resume failed and was undone.")
    resumed: ResumeOutcome | None = Field(default=None, description="Set when the pause is RESUMED.")
    conditions: ResumeConditions | None = Field(default=None, description="What the resume did for the plan's "
                                                "conditions (profile, consent, data actions) and their check.")
    resume_attempts: int = Field(default=0, description="Resumes begun; a refused one is undone and may be retried.")
    run_count: int = 1
    applied_updates: list[AppliedUpdate] = Field(
        default_factory=list, description="Update ids applied in earlier runs (Temporal deduplicates within one run)."
    )

    @model_validator(mode="before")
    @classmethod
    def _as_people_read_it(cls, data: Any) -> Any:
        # Documents and the API call the phase "state"; approval_digest is derived, recomputed when read back.
        if isinstance(data, dict) and ("approval_digest" in data or "state" in data):
            data = {("phase" if k == "state" and "phase" not in data else k): v for k, v in data.items()
                    if k != "approval_digest"}
        return data

    @property
    def data_actions_key(self) -> str:
        """The key data actions are applied and verified under: one per resume attempt, so that each
        attempt applies the plan's actions once (a refused resume's stray rows are handled again by the
        next), while retries within one attempt never apply them twice."""
        return f"{self.evidence_key}/resume-{self.resume_attempts}"

    def as_document(self) -> dict[str, Any]:
        """The state as reports and the API show it: ``state`` for the phase, no update bookkeeping."""
        document = self.model_dump(mode="json", exclude={"applied_updates"})
        document["state"] = document.pop("phase")
        return document

    @computed_field  # type: ignore[prop-decorator]
    @property
    def approval_digest(self) -> str | None:
        """What an approval must name: the digest of the plan together with the checklist's completions."""
        if self.plan is None:
            return None
        return approval_digest(self.plan.plan_digest, checklist_digest(self.checklist))

    def record(self, at: datetime, actor: str, action: str, detail: str = "", *, accepted: bool = True) -> None:
        """Add a timeline entry."""
        self.timeline.append(TimelineEntry(at=at, actor=actor, action=action, detail=detail[:MAX_NOTE],
                                           accepted=accepted))
