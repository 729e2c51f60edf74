"""Configuration of the reference fleet: its programs, agents, faults and telemetry writer."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from pausegate.models.base import Model


class FaultSettings(Model):
    """Faults injected into contract requests (never into ``/admin``).

    Every fault is decided before the request touches any state, so an injected error
    never leaves a half-applied batch behind. Faults that apply and then fail belong here
    too, as further fields read by ``FaultInjector.after_apply``.
    """

    latency_ms: float = Field(default=20.0, ge=0, description="Fixed delay added to every request.")
    jitter_ms: float = Field(default=10.0, ge=0, description="Uniform random delay on top of the latency.")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests answered 503.")


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
