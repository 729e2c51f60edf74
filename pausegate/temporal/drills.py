"""Client-side operations on drills: start one (a commander's, never while a pause is open), stop one,
read one, schedule them from the runbook.

A drill's workflow id is its own (``drill/<keyed digest of the program>``), apart from the pause's, so
a real pause never waits for a drill: starting a pause tells the program's drill to stand aside
(``preempt_drill``), and the drill restores only what lies outside the pause's scope.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.converter import WorkflowSerializationContext
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pausegate.errors import ActionRefused, PauseNotFound
from pausegate.logging import get_logger
from pausegate.models.drill import DrillInput, DrillOutcome, DrillRequest, DrillState, ScheduledDrill, StopInput
from pausegate.models.people import SYSTEM_ACTOR
from pausegate.models.state import Tuning
from pausegate.policy.drill import check_may_drill
from pausegate.temporal.ids import DIGEST_HEX_CHARS, identifier_key, name_digest, pause_id
from workflows.drill import DrillWorkflow
from workflows.drill_schedule import ScheduledDrillWorkflow

DRILL_PREFIX = "drill/"
SCHEDULE_PREFIX = "drill-schedule/"
DRILL_OPEN = "drill_open"
NOT_A_SCHEDULE = "not_a_drill_schedule"
DRILLS_LISTED = 1000
"""How many running or recent drills the board's one listing reads."""

log = get_logger("pausegate.temporal.drills")


def drill_id(client: Client, program: str) -> str:
    """The workflow id of ``program``'s drill, for this client's deployment."""
    return DRILL_PREFIX + name_digest(identifier_key(client), "drill-workflow", program)


def schedule_id(client: Client, program: str) -> str:
    return SCHEDULE_PREFIX + name_digest(identifier_key(client), "drill-schedule", program)


async def pause_open(client: Client, program: str) -> bool:
    """Whether a real pause of the program is open now."""
    try:
        described = await client.get_workflow_handle(pause_id(client, program)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.status == WorkflowExecutionStatus.RUNNING


async def start_drill(client: Client, request: DrillRequest, *, task_queue: str, tuning: Tuning | None = None,
                      await_prober: bool = False) -> WorkflowHandle[Any, DrillState]:
    """Start a drill: ``ActionRefused`` for anyone but a commander, a runbook without a canary, while a
    pause of the program is open, or while another drill of it runs."""
    check_may_drill(request, pause_open=await pause_open(client, request.program))
    tuning = tuning or Tuning()
    workflow_id = drill_id(client, request.program)
    try:
        return await client.start_workflow(
            DrillWorkflow.run,
            # checked just above; the pause that begins from here on tells the drill (preempt_drill)
            DrillInput(request=request, tuning=tuning, pause_checked=True, await_prober=await_prober),
            id=workflow_id,
            task_queue=task_queue,
            task_timeout=timedelta(seconds=tuning.workflow_task_timeout_seconds),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise ActionRefused(DRILL_OPEN, f"a drill of {request.program} is running") from None


def drill_handle(client: Client, program: str) -> WorkflowHandle[Any, DrillState]:
    return client.get_workflow_handle_for(DrillWorkflow.run, drill_id(client, program))


async def read_drill(client: Client, program: str) -> DrillState:
    """The latest drill's state, or PauseNotFound."""
    try:
        return await drill_handle(client, program).query(DrillWorkflow.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PauseNotFound(f"no drill for program {program!r}") from None
        raise


async def stop_drill(client: Client, program: str, stop: StopInput) -> bool:
    """Tell the program's running drill to stop and restore; False when none runs."""
    handle = drill_handle(client, program)
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return False
        await handle.signal(DrillWorkflow.stop, stop)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def preempt_drill(client: Client, program: str) -> None:
    """A real pause began: the program's drill, if one runs, stands aside (best effort: the drill also
    asks before it resumes the canary agents)."""
    try:
        if await stop_drill(client, program, StopInput(outcome=DrillOutcome.PREEMPTED, by=SYSTEM_ACTOR,
                                                       reason="a pause of the program began")):
            log.info("drill.preempted", program_digest=drill_id(client, program))
    except Exception as exc:  # the pause has started: nothing here may fail its start
        log.warning("drill.preempt_failed", error=str(exc)[:200], kind=type(exc).__name__)


async def schedule_drills(client: Client, request: DrillRequest, *, task_queue: str,
                          tuning: Tuning | None = None) -> str:
    """Schedule the program's drills on the runbook's cron expression (a commander's act); returns the
    schedule id. Each scheduled drill still stands aside when a pause is open (the workflow asks first)."""
    check_may_drill(request, pause_open=False)
    canary = request.runbook.canary
    if canary is None or canary.schedule is None:
        raise ActionRefused("no_schedule", f"the runbook of {request.program} schedules no drills")
    sid = schedule_id(client, request.program)
    schedule = Schedule(
        # each occurrence runs under the schedule's id with its time appended, and starts the drill at the
        # program's fixed id (workflows.drill_schedule), where a real pause finds it
        action=ScheduleActionStartWorkflow(
            # by name: the occurrence takes the input as a raw value it does not read
            ScheduledDrillWorkflow.__name__, DrillInput(request=request, tuning=tuning or Tuning()),
            id=sid, task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[canary.schedule]),
    )
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(sid).update(lambda _: ScheduleUpdate(schedule=schedule))
    return sid


async def scheduled_drill(client: Client, occurrence_id: str) -> ScheduledDrill:
    """The drill a schedule's occurrence starts: the schedule's input, opened where it was sealed for (the
    schedule's action id), and the program's drill id. ``ActionRefused`` for an occurrence of anything else."""
    sid = occurrence_id[:len(SCHEDULE_PREFIX) + DIGEST_HEX_CHARS]
    if not sid.startswith(SCHEDULE_PREFIX):
        raise ActionRefused(NOT_A_SCHEDULE, "not an occurrence of a drill schedule")
    action = (await client.get_schedule_handle(sid).describe()).schedule.action
    if not (isinstance(action, ScheduleActionStartWorkflow) and action.workflow == ScheduledDrillWorkflow.__name__
            and action.id == sid and len(action.args) == 1 and isinstance(action.args[0], Payload)):
        raise ActionRefused(NOT_A_SCHEDULE, "the schedule does not start a drill")
    converter = client.data_converter.with_context(
        WorkflowSerializationContext(namespace=client.namespace, workflow_id=action.id))
    [input] = await converter.decode([action.args[0]], [DrillInput])
    assert isinstance(input, DrillInput)
    return ScheduledDrill(workflow_id=drill_id(client, input.request.program), input=input)


async def recent_drill_ids(client: Client, programs: list[str], since: datetime) -> dict[str, str]:
    """The drill workflow id of each of ``programs`` with a drill running or started since ``since``: one
    listing for them all (the board's; visibility lags a started drill by a moment)."""
    ids = {drill_id(client, program): program for program in programs}
    found: set[str] = set()
    if ids:
        query = (f"WorkflowType = '{DrillWorkflow.__name__}' AND (ExecutionStatus = 'Running' "
                 f"OR StartTime > '{since.isoformat()}')")
        found = {execution.id async for execution in client.list_workflows(query, limit=DRILLS_LISTED)}
    return {program: workflow_id for workflow_id, program in ids.items() if workflow_id in found}


async def read_drill_by_id(client: Client, workflow_id: str) -> DrillState:
    """One drill's state by its workflow id (from ``recent_drill_ids``)."""
    return await client.get_workflow_handle_for(DrillWorkflow.run, workflow_id).query(DrillWorkflow.status)
