"""What the HTTP API answers: pauses as a caller may see them, receipts, errors, the refusal log.

The request bodies are in ``pausegate.api.requests``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, computed_field, model_validator

from pausegate.api.redaction import redact_state
from pausegate.api.refusal_log import RefusalEntry
from pausegate.models.access import DatasetContainment
from pausegate.models.base import Model
from pausegate.models.break_glass_reads import BreakGlassRead
from pausegate.models.copies import CopyListing
from pausegate.models.data_stop import DataStop
from pausegate.models.evidence import EvidenceRef
from pausegate.models.people import Severity
from pausegate.models.phase import Phase
from pausegate.models.state import AppliedUpdate, PauseState


class ErrorBody(Model):
    """Every non-2xx answer: a code for programs and a reason for people."""

    error: str = Field(description="Machine-readable code, e.g. wrong_role, stale_plan, not_found.")
    detail: str = Field(description="What went wrong, in words a person can act on.")
    problems: list[str] = Field(default_factory=list, description="Each invalid field, for 422s.")


class Receipt(Model):
    """An accepted action."""

    program: str
    state: Phase
    message: str
    digest: str | None = Field(default=None, description="What approvals must now name.")
    actor: str = Field(description="The verified actor the action was recorded under.")


class Progress(Model):
    """Containment at a glance."""

    switch_off: bool
    switch_off_at: datetime | None = Field(default=None, description="When the fleet turned the program switch off.")
    data_stop: DataStop | None = Field(
        default=None, description="Rows the program's tables hold collected after the switch went off (0: none).")
    agents_total: int
    agents_halted: int
    agents_unconfirmed: int
    agents_waived: int
    agents_confirmed: bool
    datasets_total: int
    datasets_verified: int
    grants_recorded: int
    revoke_statements: int = Field(description="REVOKE statements applied (0 when already closed).")
    access_revoked: bool
    access_gone_at: datetime | None = Field(default=None, description="When every dataset's revoke had committed.")
    access_verified_at: datetime | None = Field(
        default=None, description="When the database had confirmed, for every dataset, that access is gone."
    )
    evidence_bundles: int
    evidence_pending: list[str]
    evidence_sealed: bool
    contained: bool
    contained_at: datetime | None
    errors: list[str]

    @classmethod
    def of(cls, state: PauseState) -> Progress:
        c = state.containment
        a = c.agents
        return cls(
            switch_off=a.switch_off,
            switch_off_at=a.switch_off_at,
            data_stop=c.data_stop,
            agents_total=a.total,
            agents_halted=a.halted,
            agents_unconfirmed=a.unconfirmed,
            agents_waived=a.waived,
            agents_confirmed=a.confirmed,
            datasets_total=len(c.datasets) + len(c.datasets_pending),
            datasets_verified=sum(1 for d in c.datasets if d.verified),
            grants_recorded=sum(d.grants_recorded for d in c.datasets),
            revoke_statements=sum(d.revoked for d in c.datasets),
            access_revoked=c.access_revoked,
            access_gone_at=c.access_gone_at,
            access_verified_at=c.access_verified_at,
            evidence_bundles=len(c.evidence),
            evidence_pending=list(c.evidence_pending),
            evidence_sealed=c.evidence_sealed,
            contained=c.contained_at is not None,
            contained_at=c.contained_at,
            errors=list(c.errors[-5:]),
        )


class ExposureDataset(Model):
    """Who could read one dataset before containment (counts and the scope's digest)."""

    dataset: str
    roles_with_access: int
    grants_recorded: int
    revoked: int
    verified: bool
    access_gone_at: datetime | None = None
    access_verified_at: datetime | None = None
    scope: EvidenceRef
    document: dict[str, Any] | None = Field(default=None, description="The recorded scope (only with ?scope=true).")

    @classmethod
    def of(cls, d: DatasetContainment, document: dict[str, Any] | None = None) -> ExposureDataset:
        return cls(
            dataset=d.dataset,
            roles_with_access=d.roles_with_access,
            grants_recorded=d.grants_recorded,
            revoked=d.revoked,
            verified=d.verified,
            access_gone_at=d.access_gone_at,
            access_verified_at=d.access_verified_at,
            scope=d.scope,
            document=document,
        )


class PauseSummary(Model):
    """One line of the pause list."""

    program: str
    pause_id: str
    incident_id: str
    state: Phase
    severity: Severity
    commander: str
    started_at: datetime
    progress: Progress
    redacted: bool = Field(default=False, description="Error texts left out: the caller holds no review role.")

    @classmethod
    def of(cls, state: PauseState, *, reveal: bool) -> PauseSummary:
        shown = state if reveal else redact_state(state)
        return cls(
            program=state.program,
            pause_id=state.pause_id,
            incident_id=state.incident_id,
            state=state.phase,
            severity=state.severity,
            commander=state.commander,
            started_at=state.started_at,
            progress=Progress.of(shown),
            redacted=not reveal,
        )


class PauseView(PauseState):
    """A pause as the API shows it: its state, containment at a glance, and (for review roles, with
    ``?scope=true``) the recorded exposure. The JSON field ``state`` is the pause's phase.

    For a caller without a review role of the program, every field that names access is emptied
    (``pausegate.api.redaction``) and ``redacted`` is true."""

    phase: Phase = Field(exclude=True)
    applied_updates: list[AppliedUpdate] = Field(default_factory=list, exclude=True)
    progress: Progress
    exposure: list[ExposureDataset]
    who_saw_what: dict[str, Any] | None = Field(
        default=None, description="Who read which object in the exposure window (with ?scope=true)."
    )
    break_glass_reads: list[BreakGlassRead] | None = Field(
        default=None, description="Who saw what through break-glass grants during the pause, each entry labelled "
        "break-glass with its grant, holder and what it gave, from the grant's sealed reads document (with "
        "?scope=true)."
    )
    copies: list[CopyListing] | None = Field(
        default=None, description="The copies of the data made in the window, from the sealed copies document "
        "(with ?scope=true)."
    )
    origins: dict[str, Any] | None = Field(
        default=None, description="When and how each access path opened, from the sealed origin document: who ran "
        "which statement, when (with ?scope=true)."
    )
    redacted: bool = Field(
        default=False,
        description="True when the caller holds no review role of the program: lists that name access are empty, "
        "references null, free texts empty.",
    )
    digest_before_redaction: str | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _keep_shown_digest(cls, data: Any) -> Any:
        # A redacted view's checklist lacks the evidence the digest covers: read back, keep the digest it showed.
        if isinstance(data, dict) and data.get("redacted") and "approval_digest" in data:
            data = {**data, "digest_before_redaction": data["approval_digest"]}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def state(self) -> Phase:
        return self.phase

    @computed_field  # type: ignore[prop-decorator]
    @property
    def approval_digest(self) -> str | None:
        """What an approval must name (computed before redaction, so it is the same for every caller)."""
        if self.redacted:
            return self.digest_before_redaction
        return super().approval_digest

    @classmethod
    def of(
        cls, state: PauseState, scopes: dict[str, dict[str, Any]] | None = None,
        who_saw_what: dict[str, Any] | None = None, *, reveal: bool, copies: list[CopyListing] | None = None,
        origins: dict[str, Any] | None = None, break_glass_reads: list[BreakGlassRead] | None = None,
    ) -> PauseView:
        """The view of ``state``; with ``reveal`` false (a caller without a review role) redacted."""
        if not reveal:
            digest = state.approval_digest
            shown = redact_state(state)
            return cls(**dict(shown), progress=Progress.of(shown), exposure=[], who_saw_what=None, redacted=True,
                       digest_before_redaction=digest)
        exposure = [ExposureDataset.of(d, (scopes or {}).get(d.dataset)) for d in state.containment.datasets]
        return cls(**dict(state), progress=Progress.of(state), exposure=exposure, who_saw_what=who_saw_what,
                   copies=copies, origins=origins, break_glass_reads=break_glass_reads)


class TriggerResponse(Model):
    """The pause that is now open (new or already running)."""

    started: bool = Field(description="False when a pause was already open and is returned instead.")
    pause: PauseView
    problems: list[str] = Field(
        default_factory=list,
        description="What the runbook names that this deployment lacks (unknown connections, wrong kinds): "
        "the pause started all the same, and the steps that need them will block until fixed.",
    )


class WhoAmI(Model):
    """The caller as the API sees them."""

    id: str
    roles: list[str]


class RefusalsView(Model):
    """The API's refusal log: refusals no open pause could hold in its timeline."""

    entries: list[RefusalEntry]
    chain_problems: list[str] = Field(
        description="Lines that do not follow the line before them, or an end the signed head does not "
        "vouch for (empty when intact)."
    )
