"""Pauses themselves: trigger one, list them, read one, read its final report."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from pausegate.api.actions import authorise
from pausegate.api.deps import ActorDep, ProgramPath, StateDep
from pausegate.api.errors import ApiError
from pausegate.api.models import ErrorBody, PauseSummary, PauseView, Progress, TriggerRequest, TriggerResponse
from pausegate.api.responses import ACTION_ERRORS
from pausegate.errors import PauseNotFound
from pausegate.evidence.layout import scope_key
from pausegate.evidence.report import render_markdown
from pausegate.models.pause import PauseRequest, PauseState, ReportInput
from pausegate.policy import authority
from pausegate.temporal.pauses import read_status, start_pause

log = structlog.get_logger(__name__)

router = APIRouter(tags=["pauses"])


@router.post(
    "/pauses",
    response_model=TriggerResponse,
    status_code=201,
    responses={
        200: {"model": TriggerResponse, "description": "A pause was already open; it is returned."},
        **ACTION_ERRORS,
    },
)
async def trigger(body: TriggerRequest, state: StateDep, response: Response, actor: ActorDep) -> TriggerResponse:
    """Pull the kill switch: pause the program now (201), or return the pause already open (200)."""
    runbook = state.runbook(body.program)
    await authorise(state, body.program, actor, "trigger",
                    lambda: authority.require_commander(runbook, actor, "starting a pause"))
    pause_request = PauseRequest(
        program=body.program, reason=body.reason, severity=body.severity, commander=actor, runbook=runbook
    )
    _, started = await start_pause(
        state.client, pause_request, task_queue=state.settings.temporal.task_queue, tuning=state.tuning
    )
    status = await read_status(state.client, body.program)
    log.info("pause_triggered" if started else "pause_already_open", pause=body.program, actor=actor.id)
    response.status_code = 201 if started else 200
    return TriggerResponse(started=started, pause=PauseView.of(status))


@router.get("/pauses", response_model=list[PauseSummary])
async def list_pauses(state: StateDep, actor: ActorDep) -> list[PauseSummary]:
    """The latest pause of every program that has a runbook, open or closed."""
    limit = asyncio.Semaphore(16)

    async def one(program: str) -> PauseState | None:
        async with limit:
            try:
                return await read_status(state.client, program)
            except PauseNotFound:
                return None

    statuses = await asyncio.gather(*(one(p) for p in state.programs()))
    return [
        PauseSummary(
            program=s.program,
            pause_id=s.pause_id,
            incident_id=s.incident_id,
            state=s.phase,
            severity=s.severity,
            commander=s.commander,
            started_at=s.started_at,
            progress=Progress.of(s),
        )
        for s in statuses
        if s is not None
    ]


@router.get("/pauses/{program}", response_model=PauseView)
async def read_pause(
    program: ProgramPath,
    state: StateDep,
    actor: ActorDep,
    scope: Annotated[
        bool,
        Query(description="Include the recorded exposure scope documents (reviewers, approvers and commanders)."),
    ] = False,
) -> PauseView:
    """State, containment progress, exposure scope, checklist, plan, approvals and timeline."""
    runbook = state.runbook(program)
    status = await read_status(state.client, program)
    scopes: dict[str, dict[str, Any]] | None = None
    who_saw_what: dict[str, Any] | None = None
    if scope:
        await authorise(state, program, actor, "read_scope", lambda: authority.require_scope_reader(runbook, actor))
        key = status.evidence_key
        scopes = {}
        for d in status.containment.datasets:
            scopes[d.dataset] = await asyncio.to_thread(state.store.read_json, scope_key(key, d.dataset))
        if status.containment.exposure is not None:
            who_saw_what = await asyncio.to_thread(
                state.store.read_json, status.containment.exposure.report.key
            )
        log.info("scope_read", pause=program, actor=actor.id, datasets=len(scopes))
    return PauseView.of(status, scopes, who_saw_what)


@router.get(
    "/pauses/{program}/report",
    responses={
        200: {
            "description": "The final report.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
        },
        409: {"model": ErrorBody, "description": "The pause has not closed yet."},
    },
)
async def read_report(
    program: ProgramPath,
    state: StateDep,
    actor: ActorDep,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> Response:
    """The final report, written when the pause resumes or is decommissioned."""
    state.runbook(program)
    status = await read_status(state.client, program)
    if status.report is None:
        raise ApiError(409, "no_report", f"the pause is {status.phase.value}; the report is written when it closes")
    key = status.report.key
    document = await asyncio.to_thread(state.store.read_json, key)
    if format == "markdown":
        return PlainTextResponse(render_markdown(ReportInput.model_validate(document)), media_type="text/markdown")
    return JSONResponse(document)
