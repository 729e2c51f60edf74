"""The floor of the concurrent-pauses benchmark: a minimal workflow that runs one no-op activity.

Fifty of these started at once show what the engine and the machine allow at best; a pause's urgent
steps are judged against them. Workflow code lives in an importable module, as the sandbox requires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow


@activity.defn(name="floor_noop")
async def noop() -> datetime:
    """Nothing but saying when it ran (the wall clock, as a pause's urgent steps stamp theirs)."""
    return datetime.now(UTC)


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    @workflow.run
    async def run(self) -> datetime:
        return await workflow.execute_activity(noop, start_to_close_timeout=timedelta(minutes=1))
