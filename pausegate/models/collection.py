"""The collection profile in the fleet contract: which data types a program's agents capture.

A fleet names its data types (``available``); a profile is a subset of them. Setting a narrower
profile is how a resume plan drops a data type: agents apply it and report the profile they run
in the agent listing (``Agent.data_types``), so the drop can be confirmed agent by agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from pausegate.models.base import Model

# Data type names as fleets spell them: short lower-case words (key_codes, typed_content, …).
DATA_TYPE = r"^[a-z][a-z0-9_]{0,62}$"
DataType = Annotated[str, StringConstraints(pattern=DATA_TYPE)]
MAX_DATA_TYPES = 100


def _distinct_sorted(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("data types must not repeat")
    return sorted(values)


class CollectionRequest(Model):
    """Set the data types a program's agents capture (a subset of the fleet's ``available`` types)."""

    data_types: list[DataType] = Field(max_length=MAX_DATA_TYPES)
    incident_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)

    @field_validator("data_types")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        return _distinct_sorted(values)


class CollectionProfile(Model):
    """A program's collection profile as the fleet holds it."""

    program: str
    data_types: list[DataType] = Field(description="What agents capture now (sorted).")
    available: list[DataType] = Field(description="Every data type this fleet's agents can capture (sorted).")
    incident_id: str | None = None
    changed_at: datetime | None = None
    reason: str = ""
