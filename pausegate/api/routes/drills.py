"""Drills: start one on the runbook's canary, read it, stop it, schedule them (commanders only)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from pydantic import Field

from pausegate.api.actions import admit, authorise
from pausegate.api.deps import ActorDep, ProgramPath, StateDep
from pausegate.api.responses import ACTION_ERRORS
from pausegate.models.base import Model
from pausegate.models.drill import DrillOutcome, DrillRequest, DrillState, StopInput
from pausegate.models.limits import MAX_NOTE
from pausegate.policy import authority
from pausegate.temporal.drills import read_drill, schedule_drills, start_drill, stop_drill

log = structlog.get_logger(__name__)

router = APIRouter(tags=["drills"])


class DrillBody(Model):
    """Why (goes into the drill's timeline)."""

    reason: str = Field(default="drill", min_length=1, max_length=MAX_NOTE)


class ScheduleOut(Model):
    schedule_id: str
    cron: str


class StopOut(Model):
    stopped: bool


@router.post("/drills/{program}", response_model=DrillState, status_code=201, responses=ACTION_ERRORS)
async def start(program: ProgramPath, body: DrillBody, state: StateDep, actor: ActorDep) -> DrillState:
    """Start a drill on the program's canary: refused (409) while a pause of the program is open or a drill
    runs, and to anyone but a commander (403)."""
    runbook = await admit(state, program, actor, "drill", what="starting a drill")
    await authorise(state, program, actor, "drill", lambda: authority.require_commander(runbook, actor,
                                                                                          "starting a drill"))
    request = DrillRequest(program=program, commander=actor, runbook=runbook, reason=body.reason)
    await start_drill(state.client, request, task_queue=state.settings.temporal.task_queue, tuning=state.tuning)
    log.info("drill_started", program=program, actor=actor.id)
    return await read_drill(state.client, program)


@router.get("/drills/{program}", response_model=DrillState)
async def read(program: ProgramPath, state: StateDep, actor: ActorDep) -> DrillState:
    """The program's latest drill: its phase, outcome, restore, its own figures and the prober's."""
    await admit(state, program, actor, "read_drill", what="reading a drill", rate_limited=False)
    return await read_drill(state.client, program)


@router.post("/drills/{program}/stop", response_model=StopOut, responses=ACTION_ERRORS)
async def stop(program: ProgramPath, body: DrillBody, state: StateDep, actor: ActorDep) -> StopOut:
    """Abort the running drill: it restores the canary at once."""
    runbook = await admit(state, program, actor, "stop_drill", what="stopping a drill")
    await authorise(state, program, actor, "stop_drill", lambda: authority.require_commander(runbook, actor,
                                                                                               "stopping a drill"))
    stopped = await stop_drill(state.client, program, StopInput(outcome=DrillOutcome.ABORTED, by=actor.id,
                                                                reason=body.reason))
    return StopOut(stopped=stopped)


@router.post("/drills/{program}/schedule", response_model=ScheduleOut, responses=ACTION_ERRORS)
async def schedule(program: ProgramPath, state: StateDep, actor: ActorDep) -> ScheduleOut:
    """Schedule the program's drills on its runbook's ``canary.schedule`` (a Temporal schedule)."""
    runbook = await admit(state, program, actor, "schedule_drills", what="scheduling drills")
    await authorise(state, program, actor, "schedule_drills",
                    lambda: authority.require_commander(runbook, actor, "scheduling drills"))
    request = DrillRequest(program=program, commander=actor, runbook=runbook, reason="scheduled drill")
    sid = await schedule_drills(state.client, request, task_queue=state.settings.temporal.task_queue,
                                tuning=state.tuning)
    assert runbook.canary is not None and runbook.canary.schedule is not None  # schedule_drills refused otherwise
    return ScheduleOut(schedule_id=sid, cron=runbook.canary.schedule)
