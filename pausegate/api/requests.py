"""What the HTTP API's actions take: one request body per action.

No request body names an actor: who acts is whoever the bearer token proves.
"""

from __future__ import annotations

from pydantic import Field

from pausegate.models.base import Model
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.evidence import SHA256_HEX
from pausegate.models.limits import MAX_NOTE
from pausegate.models.people import Severity
from pausegate.models.signatures import DsseEnvelope


class TriggerRequest(Model):
    """Pull the kill switch on a program."""

    program: str = Field(min_length=1, max_length=63)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    severity: Severity = Severity.HIGH


class CompleteRequest(Model):
    """Complete (or amend) a checklist item."""

    evidence: list[EvidenceAttachment] = Field(default_factory=list, max_length=50)
    note: str = Field(default="", max_length=MAX_NOTE)


class ApproveRequest(Model):
    """Approve the current plan and review, naming the digest reviewed."""

    digest: str = Field(pattern=SHA256_HEX)
    role: str | None = Field(
        default=None,
        max_length=100,
        description="Approver role to act as; defaults to the one approver role the "
        "caller holds (an error if they hold several).",
    )
    comment: str = Field(default="", max_length=MAX_NOTE)
    envelope: DsseEnvelope | None = Field(default=None, description="The approval statement you signed with an "
                                          "enrolled passkey or SSH key (DSSE; pausegate.approvals).")


class RejectRequest(Model):
    """Reject the current plan."""

    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    role: str | None = Field(default=None, max_length=100, description="The approver or proposer role a signed "
                             "rejection is signed as (needed with an envelope).")
    envelope: DsseEnvelope | None = Field(default=None, description="The rejection statement you signed with an "
                                          "enrolled passkey or SSH key (decision reject, the reason as its comment).")


class WaiveRequest(Model):
    """Stop waiting for unconfirmed agents."""

    agent_ids: list[str] = Field(default_factory=list, max_length=5000)
    all_unconfirmed: bool = False
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class WaiveResidualRequest(Model):
    """Accept a dataset's access that no REVOKE can close (superusers, owners)."""

    dataset: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class RetryStepRequest(Model):
    """Run a blocked containment step again (its cause fixed)."""

    step: str = Field(min_length=1, max_length=200, description="The blocked step, e.g. containment.agents.")


class WaiveStepRequest(Model):
    """Stop waiting for a blocked containment step."""

    step: str = Field(min_length=1, max_length=200, description="The blocked step, e.g. containment.dataset.telemetry.")
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class DecommissionRequest(Model):
    """Vote to end the program for good."""

    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    role: str | None = Field(default=None, max_length=100, description="As for approvals.")
