"""Configuration of the reference fleet: its programs, agents, faults and telemetry writer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from pausegate.models.base import Model

FaultOp = Literal["agents", "get_switch", "switch", "halt", "resume", "audit", "collection"]


class FaultSettings(Model):
    """Faults injected into contract requests (never into ``/admin``).

    Two kinds. Faults decided before the request touches any state (latency, 503s,
    connection resets, a fleet that is down, holding a request) leave nothing behind, so
    a retry is safe. Faults after a change is applied (no answer, a late answer, a partial
    batch) are the ambiguous ones: the client cannot tell whether its change happened.

    ``latency_ms``, ``jitter_ms`` and ``error_rate`` apply to every contract request; the
    other faults only to the operations named in ``ops`` (every operation when empty).
    """

    latency_ms: float = Field(default=20.0, ge=0, description="Fixed delay added to every request.")
    jitter_ms: float = Field(default=10.0, ge=0, description="Uniform random delay on top of the latency.")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests answered 503.")
    ops: list[FaultOp] = Field(
        default_factory=list, description="Operations the faults below apply to; empty: every operation."
    )
    reset_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests whose connection is reset before anything is applied."
    )
    down_seconds: float = Field(
        default=0.0, ge=0,
        description="The fleet is down for this long from when these settings take effect: every request's "
        "connection is reset before anything is applied.",
    )
    hold_before_ms: float = Field(
        default=0.0, ge=0,
        description="Hold a request this long before applying it; a client that disconnects meanwhile "
        "gets nothing applied.",
    )
    hold_after_ms: float = Field(
        default=0.0, ge=0, description="Hold the answer this long after the change is applied."
    )
    ambiguous_rate: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of changing requests (switch, halt, resume) that are applied and then not answered.",
    )
    ambiguous_mode: Literal["hang", "reset"] = Field(
        default="hang",
        description="hang: keep the answer back for ambiguous_hang_ms (past the client's timeout), then 503; "
        "reset: drop the connection.",
    )
    ambiguous_hang_ms: float = Field(default=60_000.0, ge=0)
    partial_rate: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of halt/resume batches of which only the first part is applied and answered.",
    )
    partial_fraction: float = Field(default=0.5, ge=0, le=1, description="The part of a partial batch applied.")
    partial_mode: Literal["pending", "omit"] = Field(
        default="pending",
        description="pending: the rest of the batch is answered 'pending'; omit: the answer leaves it out.",
    )
    seed: int | None = Field(default=None, description="Reseeds the injector's choices when these settings apply.")
    profile_ignored_by: list[str] = Field(
        default_factory=list, max_length=10_000,
        description="Misbehaving agents: they report the collection profile they were sent but capture every "
        "data type (what a watch must catch in the data itself).",
    )


class FleetSettings(Model):
    """Everything the reference fleet needs to start."""

    programs: list[str] = Field(default_factory=lambda: ["employee-telemetry"], min_length=1)
    agents: int = Field(default=10_000, ge=0, le=1_000_000, description="Agents per program.")
    employees: int = Field(default=50, ge=1, description="Agents are assigned to employee_0001.. cycling.")
    offline_fraction: float = Field(default=0.0, ge=0, le=1)
    offline_agents: list[str] = Field(default_factory=list, description="Agents that start offline.")
    seed: int = Field(default=0, description="Seeds the choice of offline agents and the telemetry sample.")
    token: SecretStr | None = Field(default=None, description="Bearer token required by every endpoint.")
    telemetry_dsn: SecretStr | None = Field(default=None, description="Where collecting agents write rows.")
    tick_seconds: float = Field(default=0.5, gt=0)
    max_rows_per_tick: int = Field(default=200, ge=2, le=10_000)
    settle_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a halt waits for an in-flight telemetry write to finish."
    )
    faults: FaultSettings = Field(default_factory=FaultSettings)
    state_file: Path | None = Field(
        default=None,
        description="Journal of applied changes; replayed at start so switches and halts survive a restart.",
    )
