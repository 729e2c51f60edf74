"""The workflow's steps as data: what each activity is given and what it returns.

Everything here may enter workflow history: references, digests and counts, never collected
data, audit-log content, DSNs or secrets.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from pausegate.models.access import DatasetCheck, DatasetRevoked, GrantSpec, RestoreResult
from pausegate.models.base import Model
from pausegate.models.break_glass import StandingException
from pausegate.models.conditions import ConsentSource
from pausegate.models.copies import CopyListing
from pausegate.models.evidence import SHA256_HEX, EvidenceRef
from pausegate.models.origins import OriginDocument
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection
from pausegate.models.runbook import AuditSourceSpec, DatasetSpec
from pausegate.models.state import PauseState, TimelineEntry


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
    origins: EvidenceRef | None = Field(default=None, description="The origin document: a read counts only while a "
                                        "path the reader had was open, and data subjects up to the last such moment.")
    statement_budget: int | None = Field(default=None, description="Distinct statements parsed at most (the "
                                         "runbook's); None: the default budget.")


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
    copies: list[CopyListing] = Field(
        default_factory=list, description="The copies of the data, from the sealed copies document; filled in by "
        "the activity that stores the report (history holds only the document's reference).")
    origins: OriginDocument | None = Field(
        default=None, description="When and how each path opened, from the sealed origin document; filled in by the "
        "activity that stores the report.")
    standing: list[StandingException] = Field(
        default_factory=list, description="The static break-glass roles containment kept, with their reads in the "
        "window, from the recorded scopes and who saw what; filled in by the activity that stores the report.")


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
