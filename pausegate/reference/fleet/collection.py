"""The reference fleet's collection profiles: which data types a program's agents capture.

Kept apart from the agents' state so that it costs nothing per agent: a program holds one
profile, and only agents that were offline when it changed hold the profile they still run
(until they return and read the new one). What each data type is in the rows the telemetry
writes is ``COLUMNS``; a type not captured leaves its columns NULL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.reference.fleet.agents import AgentRecord

# Data type -> (table, columns) in the worked example's telemetry schema.
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "key_codes": ("keystrokes", ("key_code",)),
    "typed_content": ("keystrokes", ("typed_content",)),
    "window_titles": ("keystrokes", ("window_title",)),
    "mouse_positions": ("mouse_events", ("x", "y")),
    "mouse_buttons": ("mouse_events", ("button",)),
}
DATA_TYPES = frozenset(COLUMNS)


class UnknownDataTypeError(ValueError):
    """A profile named a data type this fleet's agents cannot capture."""


@dataclass(slots=True)
class Collection:
    """One program's profile, and the earlier profiles offline agents still run."""

    data_types: frozenset[str] = DATA_TYPES
    incident_id: str | None = None
    reason: str = ""
    changed_at: datetime | None = None
    stale: dict[str, frozenset[str]] = field(default_factory=dict)
    _sorted: dict[frozenset[str], list[str]] = field(default_factory=dict)

    def running(self, agent_id: str) -> frozenset[str]:
        """The data types an agent captures (and reports) now."""
        return self.stale.get(agent_id, self.data_types)

    def reported(self, agent_id: str) -> list[str]:
        types = self.running(agent_id)
        if types not in self._sorted:
            self._sorted[types] = sorted(types)
        return self._sorted[types]

    def returned(self, agent_id: str) -> None:
        """An agent came back online: it reads the program's profile."""
        self.stale.pop(agent_id, None)

    def profile(self, program: str) -> CollectionProfile:
        return CollectionProfile(
            program=program, data_types=sorted(self.data_types), available=sorted(DATA_TYPES),
            incident_id=self.incident_id, changed_at=self.changed_at, reason=self.reason,
        )

    def change(self, request: CollectionRequest, offline: Iterable[AgentRecord], now: datetime) -> bool:
        """Apply a new profile; online agents run it at once. Whether anything changed (a retry changes nothing)."""
        unknown = sorted(set(request.data_types) - DATA_TYPES)
        if unknown:
            raise UnknownDataTypeError(
                f"unknown data types: {', '.join(unknown)}; this fleet's agents capture {', '.join(sorted(DATA_TYPES))}"
            )
        wanted = frozenset(request.data_types)
        if wanted == self.data_types:
            return False
        for a in offline:
            self.stale.setdefault(a.id, self.data_types)
        self.data_types = wanted
        self.incident_id, self.reason, self.changed_at = request.incident_id, request.reason, now
        return True
