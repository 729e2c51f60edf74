"""The fleet contract as data: agents, switches, bulk halts and resumes, audit records.

The reference fleet service and the HTTP fleet connector both speak these models;
``docs/fleet-openapi.json`` is generated from the service.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from pausegate.models.base import Model


class AgentState(StrEnum):
    """What an agent is doing as the fleet last saw it."""

    COLLECTING = "collecting"
    HALTED = "halted"
    OFFLINE = "offline"


class Agent(Model):
    """One collection agent."""

    id: str
    state: AgentState
    last_seen: datetime | None = None
    last_event_at: datetime | None = None
    employee: str | None = Field(default=None, description="The employee whose workstation the agent runs on.")
    data_types: list[str] | None = Field(
        default=None,
        description="The collection profile the agent runs (sorted); an offline agent's is what it ran when "
        "last seen. None: the fleet does not report profiles.",
    )


class AgentPage(Model):
    """One page of a program's agents."""

    agents: list[Agent]
    next_page_token: str | None = None
    total: int


class SwitchRequest(Model):
    """Set the program-level collection switch."""

    enabled: bool
    incident_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class SwitchState(Model):
    """The program-level switch as the fleet holds it."""

    program: str
    enabled: bool
    incident_id: str | None = None
    changed_at: datetime | None = None
    reason: str = ""


class BatchRequest(Model):
    """Halt or resume a batch of agents; the idempotency key makes a retry a no-op."""

    agent_ids: list[str] = Field(min_length=1, max_length=5000)
    incident_id: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(min_length=1, max_length=300)


class AgentResultStatus(StrEnum):
    """Per-agent outcome of a batch."""

    CONFIRMED = "confirmed"  # the agent acknowledged: it is in the requested state
    PENDING = "pending"  # offline or did not answer; it will pick up the program switch when it returns
    NOT_FOUND = "not_found"  # no such agent in this program


class AgentResult(Model):
    """Outcome for one agent of a batch."""

    agent_id: str
    status: AgentResultStatus
    state: AgentState | None = None
    changed: bool | None = Field(
        default=None,
        description="Confirmed: whether this request changed the agent (false: it was already in the requested "
        "state). A replayed answer says what the first request did. None: the fleet does not say.",
    )


class BatchResult(Model):
    """Outcome of a batch, one entry per requested agent, in request order.

    ``replayed`` is true when the fleet answered from its record of an earlier request with
    the same idempotency key and applied nothing this time.
    """

    results: list[AgentResult]
    replayed: bool = False


class AuditRecord(Model):
    """One entry of the fleet's audit trail."""

    at: datetime
    actor: str
    action: str
    agent_id: str | None = None
    detail: str = ""
