"""What the watch does outside its workflow: pull the kill switch again, and see whether a pause is open."""

from __future__ import annotations

from typing import Any, Protocol

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.heartbeat import running
from pausegate.models.people import PauseRequest, Severity
from pausegate.models.signatures import KeyRing
from pausegate.models.state import Tuning
from pausegate.models.watch import ProgramInput, PullSwitchInput, PullSwitchResult


class StartPause(Protocol):
    """How a pause is started (``pausegate.temporal.pauses.start_pause``): a pause already open is returned."""

    async def __call__(
        self, client: Client, request: PauseRequest, *, task_queue: str, tuning: Tuning | None = None,
        keys: KeyRing | None = None,
    ) -> tuple[WorkflowHandle[Any, Any], bool]: ...


class PauseHandle(Protocol):
    """The handle of a program's pause (``pausegate.temporal.pauses.pause_handle``)."""

    def __call__(self, client: Client, program: str) -> WorkflowHandle[Any, Any]: ...


class WatchActivities:
    """Activities of the watch, through the worker's Temporal client.

    The worker hands in how pauses are started and found: that is the Temporal client's layer, above
    the activities, and the activities do not import it.
    """

    def __init__(self, client: Client, *, start_pause: StartPause, pause_handle: PauseHandle) -> None:
        self._client = client
        self._start_pause = start_pause
        self._pause_handle = pause_handle

    @activity.defn(name="pull_switch")
    async def pull_switch(self, input: PullSwitchInput) -> PullSwitchResult:
        """Start a new pause of the program (a retry, or a pause already open, returns the open one)."""
        async with running():
            request = PauseRequest(program=input.runbook.program.id, reason=input.reason, severity=Severity.HIGH,
                                   commander=input.commander, runbook=input.runbook)
            # The watched pause's key ring: the keys pinned when it began count for this one too.
            handle, started = await self._start_pause(self._client, request, task_queue=activity.info().task_queue,
                                                tuning=input.tuning, keys=input.keys)
            description = await handle.describe()
            return PullSwitchResult(pause_id=description.id, run_id=description.run_id, started=started)

    @activity.defn(name="open_pause_run")
    async def open_pause_run(self, input: ProgramInput) -> str | None:
        """The run id of the program's pause if one is running now (a new pause supersedes the watch)."""
        async with running():
            try:
                description = await self._pause_handle(self._client, input.program).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
            return description.run_id if description.status == WorkflowExecutionStatus.RUNNING else None
