"""The one step of a scheduled drill's occurrence: read the schedule's drill where it was sealed for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import activity

from pausegate.models.drill import ScheduledDrill


class ScheduledDrillActivities:
    """Given the lookup (``pausegate.temporal.drills.scheduled_drill`` over the worker's client)."""

    def __init__(self, lookup: Callable[[str], Awaitable[ScheduledDrill]]) -> None:
        self._lookup = lookup

    @activity.defn(name="scheduled_drill")
    async def scheduled_drill(self, occurrence_id: str) -> ScheduledDrill:
        """The drill the schedule that started ``occurrence_id`` starts, and the id it runs under."""
        return await self._lookup(occurrence_id)
