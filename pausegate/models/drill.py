"""A drill: the real pause practised on the runbook's canary scope, then restored to the state before.

The drill's workflow carries a ``DrillState`` (counts, digests and times; the canary's names come from
the runbook it was started with). A prober outside the workflow reports what it saw as
``ProberFigures``; the drill's report puts them beside the workflow's own ``DrillFigures``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from pausegate.models.base import Model, Mutable
from pausegate.models.evidence import EvidenceRef
from pausegate.models.limits import MAX_LISTED_IDS, MAX_NOTE
from pausegate.models.people import Actor
from pausegate.models.runbook import DatasetSpec, Runbook
from pausegate.models.seals import SealedMessage
from pausegate.models.state import TimelineEntry, Tuning

DRILL_LABEL = "drill"
"""How evidence, reports and the board tell a drill from an incident."""


class DrillPhase(StrEnum):
    CONTAINING = "CONTAINING"
    HOLDING = "HOLDING"
    RESTORING = "RESTORING"
    RESTORED = "RESTORED"
    RESTORE_FAILED = "RESTORE_FAILED"


class DrillOutcome(StrEnum):
    """How the practice part of a drill ended (the restore runs whatever it is)."""

    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    STOPPED = "stopped"  # a stop condition: the prober saw something outside the canary change
    PREEMPTED = "preempted"  # a real pause of the program began


class DrillRequest(Model):
    """What the commander asked for when starting a drill."""

    program: str
    commander: Actor
    runbook: Runbook
    reason: str = Field(default="drill", min_length=1, max_length=MAX_NOTE)


class DrillInput(Model):
    request: DrillRequest
    tuning: Tuning = Field(default_factory=Tuning)
    pause_checked: bool = Field(default=False, description="The starter found no pause open just now; a "
                                "scheduled drill asks itself before it contains anything.")
    await_prober: bool = Field(default=False, description="Wait (a minute at most) for the prober's last figures "
                                                         "before the report is written.")


class StopInput(Model):
    """Why a drill must stop now: the commander aborts it, the prober saw a change outside the canary, or
    a real pause of the program began (the canary's agents are then left to it)."""

    outcome: DrillOutcome
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class ChecklistMark(Model):
    """One item of the drill's checklist, marked by the drill itself when what it says is confirmed."""

    id: str
    title: str
    done_at: datetime | None = None


DRILL_CHECKLIST = (
    ("canary-halted", "The canary agents are halted, confirmed by the fleet"),
    ("canary-revoked", "Access to the canary tables is revoked, verified by the database"),
    ("evidence-sealed", "The canary's catalog and the audit sources of the drill's window are sealed "
                        "(labelled drill)"),
    ("restored", "Access and agents restored, equal to the snapshot"),
)


class DrillFigures(Model):
    """Times as the workflow saw them, in seconds from the drill's start."""

    switch_off_seconds: float | None = None
    access_gone_seconds: float | None = None
    restored_seconds: float | None = None


class ProberFigures(Model):
    """Times as the prober saw them from outside, in seconds from the drill's start, and what it saw
    change outside the canary (a stop condition)."""

    probes: int = Field(default=0, ge=0)
    switch_off_seconds: float | None = None
    access_gone_seconds: float | None = None
    restored_seconds: float | None = None
    outside_changes: list[str] = Field(default_factory=list, max_length=MAX_LISTED_IDS)


class ProberReport(SealedMessage):
    """The prober's figures as it reports them (the ``report_probe`` update): addressed by the client that
    seals it (``sealed_for``: this drill's run and the update id), so a copy sent again, to another drill,
    or by anyone who cannot seal is refused on the drill's timeline rather than shown as measured."""

    figures: ProberFigures
    by: str = Field(min_length=1, max_length=200, description="Who reports: the prober's name and host.")


PROBER_SEALED = "a sealed update addressed to this drill"
"""How the figures the report shows arrived (``DrillState.prober_via``)."""


class HaltCanaryInput(Model):
    connection: str
    program: str
    incident_id: str
    agent_ids: list[str] = Field(min_length=1, max_length=MAX_LISTED_IDS)
    round: int = Field(default=0, ge=0, description="Which call of the drill this is (keys the fleet's batch).")


class CanaryAgents(Model):
    """The canary agents as the fleet confirms them: how many are in the wanted state, which are not."""

    confirmed: int
    pending_ids: list[str] = Field(default_factory=list)
    not_found: list[str] = Field(default_factory=list, description="Canary agents the fleet does not know.")
    halted_before: list[str] = Field(default_factory=list, description="Canary agents halted before the drill: "
                                     "left halted by its restore.")
    unknown_before: int = Field(default=0, description="Confirmed agents the fleet did not say it changed.")


class RestoreCanaryInput(Model):
    drill_key: str
    dataset: DatasetSpec
    snapshot: EvidenceRef | None = Field(default=None, description="None: the revoke's answer never came back.")


class CanaryRestored(Model):
    """The canary's access restored to its snapshot, compared as sorted sets of catalog entries."""

    statements: int = Field(ge=0, description="GRANT / REVOKE statements the restore ran (0: already equal).")
    equal: bool
    differences: list[str] = Field(default_factory=list, max_length=MAX_LISTED_IDS)
    compared: int = Field(ge=0, description="Catalog entries compared (ACLs, column ACLs, default privileges, "
                                            "memberships).")


class DrillReportInput(Model):
    drill_key: str
    state: DrillState


class DrillState(Mutable):
    """Everything a person may read about a drill."""

    drill_id: str
    drill_key: str = Field(description="Where its evidence is filed: <program>/drill-<started>-<suffix>.")
    incident_id: str
    program: str
    commander: str
    label: str = DRILL_LABEL
    started_at: datetime
    phase: DrillPhase = DrillPhase.CONTAINING
    outcome: DrillOutcome | None = None
    outcome_reason: str = ""
    agents_halted: int = 0
    agents_halted_before: list[str] = Field(default_factory=list, description="Canary agents halted before the "
                                            "drill, as the fleet said: its restore leaves them halted.")
    not_found: list[str] = Field(default_factory=list, description="Canary agents the fleet does not know.")
    agents_pending: list[str] = Field(default_factory=list)
    access_revoked: bool = False
    snapshot: EvidenceRef | None = None
    evidence: list[EvidenceRef] = Field(default_factory=list, description="The audit sources sealed for the "
                                        "drill's window, under its own key.")
    restore: CanaryRestored | None = None
    agents_collecting: int = 0
    agents_left_to_pause: bool = False
    restore_attempts: int = 0
    checklist: list[ChecklistMark] = Field(default_factory=list)
    figures: DrillFigures = Field(default_factory=DrillFigures)
    prober: ProberFigures | None = None
    prober_via: str | None = Field(default=None, description="How the prober's figures arrived, and from whom.")
    prober_refused: int = Field(default=0, ge=0, description="Prober figures refused: not sealed for this drill.")
    report: EvidenceRef | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)

    def record(self, at: datetime, actor: str, action: str, detail: str = "", *, accepted: bool = True) -> None:
        """Add a timeline entry."""
        self.timeline.append(TimelineEntry(at=at, actor=actor, action=action, detail=detail[:MAX_NOTE],
                                           accepted=accepted))

    def mark(self, item: str, at: datetime) -> None:
        """Mark a checklist item done (once)."""
        self.checklist = [c.model_copy(update={"done_at": c.done_at or at}) if c.id == item else c
                          for c in self.checklist]


DrillReportInput.model_rebuild()


class ScheduledDrill(Model):
    """What a schedule's occurrence starts: the program's drill at its own fixed workflow id, so that a
    real pause finds it there (a schedule appends its time to every id it starts)."""

    workflow_id: str = Field(max_length=1000)
    input: DrillInput
