"""The pause's state: what the workflow carries whole (and through continue-as-new), the status
query returns and the API's view extends; and the workflow's input that carries it.

Everything here may enter workflow history, so it holds references, digests and counts only,
never collected data, audit-log content, DSNs or secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, computed_field, model_validator

from pausegate.models.access import DatasetContainment
from pausegate.models.base import Model, Mutable
from pausegate.models.break_glass import BreakGlassState
from pausegate.models.checklist import ItemStatus
from pausegate.models.conditions import ResumeConditions
from pausegate.models.copies import CopiesSummary
from pausegate.models.data_stop import DataStop
from pausegate.models.digests import approval_digest, checklist_digest
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.limits import MAX_LISTED_IDS, MAX_NOTE
from pausegate.models.origins import OriginSummary
from pausegate.models.people import PauseRequest, Severity
from pausegate.models.phase import Phase
from pausegate.models.plan import Approval, PlanRecord
from pausegate.models.seals import SealedMessage
from pausegate.models.signatures import KeyRing, SignoffRound
from pausegate.models.updates import UpdateReceipt


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
    over_budget: int = Field(default=0, description="Of the unparsed, those left unread because the step's budget "
                             "of distinct statements was spent (runbook exposure.statement_budget).")
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
    copies: CopiesSummary | None = Field(default=None, description="Copies of the data made in the window, "
                                         "found and contained: counts, ids and the copies document's reference.")
    data_stop: DataStop | None = Field(default=None, description="Rows collected after the switch went off.")
    origins: OriginSummary | None = Field(default=None, description="When and how the data became readable, "
                                          "from the statement log: counts, times and the origin document's reference.")
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


class TimelineEntry(Model):
    """Who did what, when; refusals included."""

    at: datetime
    actor: str
    action: str
    detail: str = ""
    accepted: bool = True
    count: int = Field(default=1, ge=1, description="Refusals of one actor and action within a minute share one entry.")


class ResumeOutcome(Model):
    """What the resume did, as the fleet and the database confirmed it: the facts after RESUMED."""

    at: datetime
    switch_on: bool
    collecting: int = Field(description="Agents the fleet confirmed collecting again (switch and individual resumes).")
    resumed_individually: int
    unconfirmed: int = Field(description="Agents to resume when they return.")
    grants_restored: int
    grants_verified: bool


class AppliedUpdate(Model):
    """An update already applied, remembered by id so a retry after continue-as-new is not applied twice."""

    id: str
    receipt: UpdateReceipt


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
    signoff: SignoffRound | None = Field(default=None, description="Signed approvals: the pinned key ring and the "
                                         "round's nonce (None: a pause begun before them).")
    waivers: list[Waiver] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    timeline_archived: list[EvidenceRef] = Field(default_factory=list)
    report: EvidenceRef | None = None
    resume_error: str | None = Field(default=None, description="Why the last resume failed and was undone.")
    resumed: ResumeOutcome | None = Field(default=None, description="Set when the pause is RESUMED.")
    conditions: ResumeConditions | None = Field(default=None, description="What the resume did for the plan's "
                                                "conditions (profile, consent, data actions) and their check.")
    resume_attempts: int = Field(default=0, description="Resumes begun; a refused one is undone and may be retried.")
    break_glass: BreakGlassState | None = Field(default=None, description="Access granted during the pause "
                                                "(none: nobody asked for any).")
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
        if document["containment"].get("copies") is None:
            del document["containment"]["copies"]  # documents of pauses begun before copies were found
        if document["containment"].get("origins") is None:
            del document["containment"]["origins"]  # documents of pauses begun before origins were derived
        if document.get("signoff") is None:
            document.pop("signoff", None)  # documents of pauses begun before signed approvals
        for approval in document["approvals"]:
            if approval.get("signature") is None:
                approval.pop("signature", None)
        if document.get("break_glass") is None:
            document.pop("break_glass", None)  # documents of pauses without grants stay as they were
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


class PauseWorkflowInput(SealedMessage):
    """Start (or continue) a pause."""

    request: PauseRequest
    tuning: Tuning = Field(default_factory=Tuning)
    keys: KeyRing | None = Field(default=None, description="The enrolled keys pinned when the pause started.")
    state: PauseState | None = Field(default=None, description="Carried by continue-as-new; None at the start.")
