"""Pauses themselves: trigger one, list them, read one, read its final report."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from pausegate.analysis.break_glass_reads import break_glass_reads
from pausegate.api.actions import admit, authorise
from pausegate.api.deps import ActorDep, ProgramPath, StateDep
from pausegate.api.errors import ApiError
from pausegate.api.models import ErrorBody, PauseSummary, PauseView, TriggerResponse
from pausegate.api.requests import TriggerRequest
from pausegate.api.responses import ACTION_ERRORS
from pausegate.api.routes.keys import ring_or_none
from pausegate.errors import PauseNotFound
from pausegate.evidence.interface import read_recorded
from pausegate.evidence.report import render_markdown
from pausegate.models.break_glass_reads import BreakGlassRead
from pausegate.models.copies import CopiesDocument, CopyListing, listings
from pausegate.models.people import PauseRequest
from pausegate.models.steps import ReportInput
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
    """Pull the kill switch: pause the program now (201), or return the pause already open (200).

    ``problems`` lists what the runbook names that this deployment lacks; the pause starts all the same."""
    runbook = await admit(state, body.program, actor, "trigger", what="starting a pause", rate_limited=False)
    # The kill switch is never rate-limited for a commander of the program: nothing stored (a bucket
    # emptied in the shared database, a store that is down) may stand between them and the switch.
    # Anyone else's attempt spends their rate like any other action.
    if not actor.has_any(authority.commander_roles(runbook)):
        await state.rate_limiter.acquire(actor.id)
    await authorise(state, body.program, actor, "trigger",
                    lambda: authority.require_commander(runbook, actor, "starting a pause"))
    problems = state.runbook_problems(body.program)
    pause_request = PauseRequest(
        program=body.program, reason=body.reason, severity=body.severity, commander=actor, runbook=runbook
    )
    _, started = await start_pause(
        state.client, pause_request, task_queue=state.settings.temporal.task_queue, tuning=state.tuning,
        keys=await asyncio.to_thread(ring_or_none, state),
    )
    status = await read_status(state.client, body.program)
    log.info("pause_triggered" if started else "pause_already_open", pause=body.program, actor=actor.id,
             problems=len(problems))
    response.status_code = 201 if started else 200
    reveal = authority.may_read_access(runbook, actor)
    return TriggerResponse(started=started, pause=PauseView.of(status, reveal=reveal), problems=problems)


@router.get("/pauses", response_model=list[PauseSummary])
async def list_pauses(state: StateDep, actor: ActorDep) -> list[PauseSummary]:
    """The latest pause, open or closed, of every program that has a runbook and in which the caller
    holds a role (error texts only for callers with a review role of the program). A caller without a
    role in a program learns nothing of its pause here, not even that there is one."""
    limit = asyncio.Semaphore(16)

    async def one(program: str) -> PauseSummary | None:
        async with limit:
            try:
                runbook = state.runbook(program)
                if not authority.holds_program_role(runbook, actor.for_program(program)):
                    return None
                reveal = authority.may_read_access(runbook, actor.for_program(program))
                return PauseSummary.of(await read_status(state.client, program), reveal=reveal)
            except PauseNotFound:
                return None
            except ApiError as exc:  # a runbook that does not validate: its program is left out, not the list
                log.warning("pause_not_listed", program=program, error=exc.code)
                return None

    return [s for s in await asyncio.gather(*(one(p) for p in state.programs())) if s is not None]


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
    """State, containment progress, exposure scope, checklist, plan, approvals and timeline.

    A caller without a review role of the program gets the view redacted (``redacted: true``: lists
    that name access empty, references null, free texts empty) and is refused ``scope=true``."""
    runbook = state.runbook(program)
    if scope:
        runbook = await admit(state, program, actor, "read_scope", what="reading the exposure scope",
                              rate_limited=False)
        await authorise(state, program, actor, "read_scope", lambda: authority.require_scope_reader(runbook, actor))
    status = await read_status(state.client, program)
    reveal = authority.may_read_access(runbook, actor)
    scopes: dict[str, dict[str, Any]] | None = None
    who_saw_what: dict[str, Any] | None = None
    copies: list[CopyListing] | None = None
    origins: dict[str, Any] | None = None
    bg_reads: list[BreakGlassRead] | None = None
    if scope:
        # each document must be the one the pause recorded, not merely one the deployment signed
        scopes = {}
        for d in status.containment.datasets:
            scopes[d.dataset] = await read_recorded(state.store, d.scope)
        if status.containment.exposure is not None:
            report_ref = status.containment.exposure.report
            who_saw_what = await read_recorded(state.store, report_ref)
        if status.containment.copies is not None:
            copies = listings(CopiesDocument.model_validate(
                await read_recorded(state.store, status.containment.copies.document)))
        if status.containment.origins is not None:
            origins = await read_recorded(state.store, status.containment.origins.document)
        bg_reads = await break_glass_reads(state.store, status)
        log.info("scope_read", pause=program, actor=actor.id, datasets=len(scopes))
    return PauseView.of(status, scopes, who_saw_what, reveal=reveal, copies=copies, origins=origins,
                        break_glass_reads=bg_reads)


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
    """The final report, written when the pause resumes or is decommissioned (review roles only: it
    names who had access and who saw what)."""
    runbook = await admit(state, program, actor, "read_report", what="reading the report", rate_limited=False)
    await authorise(state, program, actor, "read_report", lambda: authority.require_scope_reader(runbook, actor))
    status = await read_status(state.client, program)
    if status.report is None:
        raise ApiError(409, "no_report", f"the pause is {status.phase.value}; the report is written when it closes")
    document = await read_recorded(state.store, status.report)
    if format == "markdown":
        return PlainTextResponse(render_markdown(ReportInput.model_validate(document)), media_type="text/markdown")
    return JSONResponse(document)


@router.get(
    "/pauses/{program}/exposure/data-subjects",
    responses={
        200: {"description": "The people whose records were readable in the exposure window (owner-only evidence)."},
        409: {"model": ErrorBody, "description": "No list was recorded (containment not done, or no data-subject "
              "column in the runbook)."},
    },
)
async def read_data_subjects(program: ProgramPath, state: StateDep, actor: ActorDep) -> Response:
    """Whose data was exposed: the list behind the count in the pause's exposure, for the employee notice
    (review roles only). Served only if it is the document the pause recorded (digest checked)."""
    runbook = await admit(state, program, actor, "read_data_subjects", what="reading whose data was exposed",
                          rate_limited=False)
    await authorise(state, program, actor, "read_data_subjects",
                    lambda: authority.require_scope_reader(runbook, actor))
    status = await read_status(state.client, program)
    exposure = status.containment.exposure
    if exposure is None or exposure.data_subjects_list is None:
        raise ApiError(409, "no_data_subjects", f"the pause is {status.phase.value} and has recorded no list of "
                       "data subjects (the runbook names no data-subject column, or containment is not done)")
    ref = exposure.data_subjects_list
    document = await read_recorded(state.store, ref)
    log.info("data_subjects_read", pause=program, actor=actor.id, sha256=ref.sha256)
    return JSONResponse(document, headers={"Cache-Control": "no-store"})
