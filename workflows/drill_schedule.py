"""One occurrence of a program's drill schedule: start the program's drill at its fixed id, and wait for it.

A Temporal schedule starts every occurrence under its action id with the occurrence's time appended,
and binds the action's sealed input to the action id (``pausegate.temporal.codec``), so the input does
not open in the occurrence: this workflow takes it as a raw value it does not read. An activity reads
the schedule's input where it was sealed for (``pausegate.temporal.drills.scheduled_drill``) and names
the drill's fixed id, where a real pause's start tells a running drill to stand aside (``preempt_drill``).
The drill is abandoned, never terminated, with this workflow: its restore must run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.drill_schedule import ScheduledDrillActivities
    from pausegate.models.drill import ScheduledDrill
    from workflows.drill import DrillWorkflow

SKIPPED = "skipped: a drill of the program runs"
STARTED = "started"


@workflow.defn(name="ScheduledDrillWorkflow")
class ScheduledDrillWorkflow:
    """Start the scheduled drill at the program's drill id; returns what happened to this occurrence."""

    @workflow.run
    async def run(self, sealed: RawValue) -> str:
        drill: ScheduledDrill = await workflow.execute_activity_method(
            ScheduledDrillActivities.scheduled_drill, workflow.info().workflow_id,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["not_a_drill_schedule"]),
        )
        try:
            handle = await workflow.start_child_workflow(
                DrillWorkflow.run, drill.input, id=drill.workflow_id,
                task_timeout=timedelta(seconds=drill.input.tuning.workflow_task_timeout_seconds),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            return SKIPPED
        await handle
        return STARTED
