"""What the watch does outside its workflow: pull the kill switch again, and see whether a pause is open."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.heartbeat import running
from pausegate.models.pause import PauseRequest, Severity
from pausegate.models.watch import ProgramInput, PullSwitchInput, PullSwitchResult
from pausegate.temporal.pauses import pause_handle, start_pause


class WatchActivities:
    """Activities of the watch, through the worker's Temporal client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="pull_switch")
    async def pull_switch(self, input: PullSwitchInput) -> PullSwitchResult:
        """Start a new pause of the program (a retry, or a pause already open, returns the open one)."""
        async with running():
            request = PauseRequest(program=input.runbook.program.id, reason=input.reason, severity=Severity.HIGH,
                                   commander=input.commander, runbook=input.runbook)
            handle, started = await start_pause(self._client, request, task_queue=activity.info().task_queue,
                                                tuning=input.tuning)
            description = await handle.describe()
            return PullSwitchResult(pause_id=description.id, run_id=description.run_id, started=started)

    @activity.defn(name="open_pause_run")
    async def open_pause_run(self, input: ProgramInput) -> str | None:
        """The run id of the program's pause if one is running now (a new pause supersedes the watch)."""
        async with running():
            try:
                description = await pause_handle(self._client, input.program).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
            return description.run_id if description.status == WorkflowExecutionStatus.RUNNING else None
