"""Shared pydantic base classes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base for pausegate's data: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Mutable(BaseModel):
    """Base for state the workflow updates in place (never crosses a trust boundary raw)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
