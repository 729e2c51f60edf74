"""The runbook's terms for break-glass access during a pause (``pausegate.models.break_glass``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from pausegate.models.base import Model


class BreakGlassSpec(Model):
    """The runbook's terms for access during a pause: who may ask, who approves, for how long at most,
    who reviews the use afterwards, and whether an emergency self-grant is allowed."""

    requester_roles: list[str] = Field(min_length=1, description="Roles that may request access.")
    approver_roles: list[str] = Field(
        default_factory=lambda: ["incident-commander"], min_length=1,
        description="Roles that approve a request (the commander's role, or a second reviewer's).",
    )
    reviewer_roles: list[str] = Field(
        min_length=1, description="Roles that review the use before resume (never the holder or the approver).",
    )
    max_duration: timedelta = Field(default=timedelta(hours=1), description="The longest grant (ISO 8601).")
    emergency_self_grant: bool = Field(
        default=False, description="A requester may start a grant at once; every approver role is told.",
    )

    @model_validator(mode="after")
    def _sensible(self) -> BreakGlassSpec:
        if self.max_duration < timedelta(seconds=1) or self.max_duration > timedelta(days=7):
            raise ValueError("max_duration must be between one second and seven days")
        return self
