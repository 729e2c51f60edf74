"""Controls and counters of the reference fleet, for tests and demos (not part of the fleet contract).

They let a test take agents offline and back, change injected faults, and read what the
fleet actually did: how often each agent applied a halt or resume, how many batches were
applied or replayed, how many telemetry ticks ran and what they wrote. No faults are
injected here; the same bearer token is required, since these controls are at least as
sensitive as the contract.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from pausegate.models.base import Model
from pausegate.models.fleet import Agent, AgentState
from pausegate.reference.fleet.auth import authenticate
from pausegate.reference.fleet.faults import FaultInjector
from pausegate.reference.fleet.fleet import FleetService, Program
from pausegate.reference.fleet.settings import FaultSettings

ADMIN_ACTOR = "admin"


class AgentIds(Model):
    agent_ids: list[str] = Field(min_length=1, max_length=100_000)


class AgentEffects(Model):
    """What one agent actually applied: a repeated or replayed command adds nothing here."""

    agent_id: str
    state: AgentState
    halts: int
    resumes: int
    queued: str | None = Field(
        default=None, description="'halt' or 'resume' waiting for the agent to return."
    )


class ProgramStats(Model):
    program: str
    agents: int
    collecting: int
    halted: int
    offline: int
    switch_enabled: bool
    switch_changes: int
    batches_applied: int
    batches_replayed: int
    audit_records: int
    ticks: int
    ticks_written: int
    ticks_discarded: int
    rows_written: int
    failed_writes: int
    write_in_flight: bool
    delayed_requests: int = Field(description="Contract requests the injected latency delayed.")
    delay_ms: float = Field(description="The latency injected into them, in all.")


def _program(program: str, request: Request) -> Program:
    service: FleetService = request.app.state.service
    return service.program(program)


ProgramDep = Annotated[Program, Depends(_program)]

admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(authenticate)])


@admin_router.get("/programs/{program}/stats", summary="Counters of what the fleet did")
async def stats(program: ProgramDep, request: Request) -> ProgramStats:
    c = program.counters
    faults: FaultInjector = request.app.state.faults
    return ProgramStats(
        program=program.name,
        agents=program.count(),
        collecting=program.count(AgentState.COLLECTING),
        halted=program.count(AgentState.HALTED),
        offline=program.count(AgentState.OFFLINE),
        switch_enabled=program.switch.enabled,
        switch_changes=c.switch_changes,
        batches_applied=c.batches_applied,
        batches_replayed=c.batches_replayed,
        audit_records=len(program.audit),
        ticks=c.ticks,
        ticks_written=c.ticks_written,
        ticks_discarded=c.ticks_discarded,
        rows_written=c.rows_written,
        failed_writes=c.failed_writes,
        write_in_flight=program.in_flight is not None,
        delayed_requests=faults.delayed[program.name],
        delay_ms=faults.delay_ms[program.name],
    )


def _set_online(program: Program, ids: list[str], online: bool) -> list[Agent]:
    unknown = [i for i in ids if i not in program.agents]
    if unknown:
        raise HTTPException(404, f"unknown agents: {', '.join(unknown[:10])}")
    return program.set_online(ids, online, actor=ADMIN_ACTOR)


@admin_router.post("/programs/{program}/offline", summary="Take agents offline")
async def take_offline(program: ProgramDep, body: AgentIds) -> list[Agent]:
    return _set_online(program, body.agent_ids, False)


@admin_router.post(
    "/programs/{program}/online",
    summary="Bring agents back online",
    description="A returning agent applies any queued halt or resume, then reads the program switch.",
)
async def bring_online(program: ProgramDep, body: AgentIds) -> list[Agent]:
    return _set_online(program, body.agent_ids, True)


@admin_router.post("/programs/{program}/effects", summary="Per-agent effect counters")
async def effects(program: ProgramDep, body: AgentIds) -> list[AgentEffects]:
    out: list[AgentEffects] = []
    for aid in body.agent_ids:
        a = program.agents.get(aid)
        if a is None:
            raise HTTPException(404, f"unknown agent {aid!r}")
        queued = None if a.queued is None else ("halt" if a.queued else "resume")
        out.append(
            AgentEffects(
                agent_id=aid, state=program.state_of(a), halts=a.halts, resumes=a.resumes, queued=queued
            )
        )
    return out


@admin_router.get("/faults", summary="Faults injected into contract requests")
async def get_faults(request: Request) -> FaultSettings:
    faults: FaultInjector = request.app.state.faults
    return faults.settings


@admin_router.put("/faults", summary="Change the injected faults")
async def put_faults(body: FaultSettings, request: Request) -> FaultSettings:
    faults: FaultInjector = request.app.state.faults
    faults.update(body)
    return faults.settings
