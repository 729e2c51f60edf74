"""The resume plan and the approvals that bind to it: which agents restart, which narrowed grants
come back, on what conditions, and who said yes to which digest."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from pausegate.models.access import GrantSpec
from pausegate.models.base import Model
from pausegate.models.conditions import CollectionPlan
from pausegate.models.data_actions import DataAction
from pausegate.models.evidence import SHA256_HEX, EvidenceRef
from pausegate.models.limits import MAX_LISTED_IDS, MAX_NOTE
from pausegate.models.signatures import ApprovalSignature

# Temporal warns at 256 KB per payload and refuses 2 MB: a plan must fit well inside with the rest of an update.
MAX_PLAN_BYTES = 256 * 1024

AgentId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Condition = Annotated[str, StringConstraints(min_length=1, max_length=500)]


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


COPY_ID = r"^[0-9a-f]{16}$"


class CopyDecision(Model):
    """What the resume does with one copy of the data (by its id in the pause's copies document)."""

    copy_id: str = Field(pattern=COPY_ID)
    action: Literal["drop", "purge", "keep_quarantined", "waive"] = Field(
        description="drop it; purge its rows with one of the plan's data actions; keep it quarantined; or leave it "
        "as it is (waive: the commander only, with a reason, shown to approvers as a risk).")
    data_action: int | None = Field(default=None, ge=0, description="purge: the position of the plan's data action "
                                    "whose rule deletes the copy's rows.")
    reason: str = Field(default="", max_length=MAX_NOTE, description="Why (required to waive).")

    @model_validator(mode="after")
    def _complete(self) -> CopyDecision:
        if (self.action == "purge") != (self.data_action is not None):
            raise ValueError("a purge names its data_action, and only a purge does")
        if self.action == "waive" and not self.reason.strip():
            raise ValueError("a waiver needs a reason")
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
    copies: list[CopyDecision] = Field(default_factory=list, max_length=MAX_LISTED_IDS,
                                       description="What happens to each copy of the data the pause found.")

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
    proposed_by_email: str | None = Field(
        default=None, exclude_if=lambda email: email is None,
        description="The proposer's verified email, when the identity has one: the proposer is one person "
        "whatever identity they sign in with.")
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
    signature: ApprovalSignature | None = Field(
        default=None, description="The approver's signed statement and the enrolled key that verified it; "
        "None: approved with a token only.")
