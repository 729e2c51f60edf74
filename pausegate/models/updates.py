"""The messages people send a pause: the update inputs (the API sets ``actor``; a request body never
does; the client sets ``sealed_for``: ``pausegate.models.seals``), the receipt an accepted update returns,
and the refusals the API reports."""

from __future__ import annotations

from pydantic import Field, model_validator

from pausegate.models.base import Model
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.evidence import SHA256_HEX
from pausegate.models.limits import MAX_NOTE
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentId, ResumePlan
from pausegate.models.seals import SealedMessage
from pausegate.models.signatures import DsseEnvelope, EnrolledKey


class CompleteItemInput(SealedMessage):
    """Complete (or amend) a checklist item."""

    actor: Actor
    item_id: str = Field(min_length=1, max_length=100)
    evidence: list[EvidenceAttachment] = Field(default_factory=list, max_length=50)
    note: str = Field(default="", max_length=MAX_NOTE)


class ProposePlanInput(SealedMessage):
    """Propose (or replace) the resume plan; replaces approvals."""

    actor: Actor
    plan: ResumePlan


class ApproveInput(SealedMessage):
    """Approve the current plan, naming the digest the approver reviewed."""

    actor: Actor
    role: str = Field(description="Which approver role the actor approves as.")
    digest: str = Field(pattern=SHA256_HEX)
    comment: str = Field(default="", max_length=MAX_NOTE)
    envelope: DsseEnvelope | None = Field(default=None, description="The approval statement the approver signed "
                                          "(pausegate.approvals); None: a token-only approval.")
    key: EnrolledKey | None = Field(default=None, description="The signing key as enrolled, when it was enrolled "
                                    "after the pause pinned its key ring.")


class RejectPlanInput(SealedMessage):
    """Reject the current plan; it and its approvals are void."""

    actor: Actor
    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    role: str | None = Field(default=None, max_length=100, description="The role the rejection is signed as "
                             "(an approver or proposer role the actor holds); needed with an envelope.")
    envelope: DsseEnvelope | None = Field(default=None, description="The rejection statement the rejecter signed "
                                          "(decision reject, the reason as its comment); None: token only.")
    key: EnrolledKey | None = Field(default=None, description="The signing key as enrolled, when it was enrolled "
                                    "after the pause pinned its key ring.")


class WaiveAgentsInput(SealedMessage):
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


class WaiveResidualInput(SealedMessage):
    """The commander accepts access to a dataset that no REVOKE can close (superusers, owners)."""

    actor: Actor
    dataset: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class RetryStepInput(SealedMessage):
    """The commander asks a blocked containment step to run again (after fixing its cause)."""

    actor: Actor
    step: str = Field(min_length=1, max_length=200)


class WaiveStepInput(SealedMessage):
    """The commander stops waiting for a blocked containment step, with a reason."""

    actor: Actor
    step: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class DecommissionInput(SealedMessage):
    """Vote to end the program for good (counts toward the same quorum)."""

    actor: Actor
    role: str
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class UpdateReceipt(Model):
    """What an accepted update returns."""

    phase: Phase
    message: str
    digest: str | None = None


class RefusalInput(Model):
    """A refused action, recorded in the timeline (the only trace a refusal leaves)."""

    actor: str = Field(max_length=200)
    action: str = Field(max_length=100)
    reason: str = Field(max_length=MAX_NOTE)
    count: int = Field(default=1, ge=1, le=1_000_000, description="Refusals the API coalesced into this one.")
