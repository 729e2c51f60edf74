"""The pauses board, and starting a pause (form, confirmation, the kill switch itself)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from pausegate.console import bridge
from pausegate.console.bridge import Refusal, refusal_of
from pausegate.console.drill_lines import drill_lines
from pausegate.console.pages import Visitor, VisitorDep, done, posted, render
from pausegate.errors import PauseNotFound
from pausegate.models.people import Severity
from pausegate.models.runbook import Runbook
from pausegate.models.state import PauseState
from pausegate.policy import authority
from pausegate.temporal.pauses import read_status

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/console", include_in_schema=False)


def shown_programs(visitor: Visitor) -> dict[str, Runbook]:
    """The programs the board and its live events show this person: those they hold a role in
    (``authority.holds_program_role``; the admin role is none). Anyone else learns nothing of a program's
    pause from the board, not even that there is one."""
    return {program: runbook for program, runbook in bridge.runbooks(visitor.api).items()
            if authority.holds_program_role(runbook, visitor.actor.for_program(program))}


def board_context(visitor: Visitor, statuses: dict[str, PauseState | None]) -> dict[str, Any]:
    """What the board shows, from statuses already read (by the page, or by the live watch)."""
    programs = [
        bridge.seen_program(program, runbook, visitor.actor, statuses.get(program))
        for program, runbook in shown_programs(visitor).items()
    ]
    return {"programs": programs, "version": bridge.version_of(p.view for p in programs),
            "may_pause_any": any(p.pause_blocked is None for p in programs)}


async def read_statuses(visitor: Visitor, programs: list[str]) -> dict[str, PauseState | None]:
    limit = asyncio.Semaphore(16)

    async def one(program: str) -> PauseState | None:
        async with limit:
            try:
                return await read_status(visitor.api.client, program)
            except PauseNotFound:
                return None

    return dict(zip(programs, await asyncio.gather(*(one(p) for p in programs)), strict=True))


@router.get("/")
async def board(request: Request, visitor: VisitorDep) -> Response:
    try:
        statuses = await read_statuses(visitor, list(shown_programs(visitor)))
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)
    # the drills' table is not part of the live rows: a drill is never a pause of the board
    drills = await drill_lines(visitor.api.client, list(shown_programs(visitor)), datetime.now(UTC))
    return render(request, visitor, "board.html", drills=drills, **board_context(visitor, statuses))


def _trigger_context(visitor: Visitor, program: str | None) -> dict[str, Any]:
    runbooks = bridge.runbooks(visitor.api)
    choices = [(p, r.program.name, bridge.trigger_blocked(r, visitor.actor.for_program(p)))
               for p, r in runbooks.items()]
    return {"choices": choices, "chosen": program, "severities": [s.value for s in Severity]}


@router.get("/pause")
async def trigger_form(
    request: Request, visitor: VisitorDep, program: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    """Step 1 of starting a pause: which program, why, how severe."""
    return render(request, visitor, "trigger.html", posted={}, **_trigger_context(visitor, program))


def _trigger_fields(form: Any) -> tuple[str, str, Severity]:
    program = form.text("program", required="The program")
    reason = form.text("reason", required="A reason")
    try:
        severity = Severity(form.get("severity", Severity.HIGH.value))
    except ValueError:
        raise Refusal(422, "invalid_request", "unknown severity", ["severity: unknown"]) from None
    return program, reason, severity


@router.post("/pause/confirm")
async def trigger_confirm(request: Request) -> Response:
    """Step 2: what pulling the switch will do, and whether this person may; nothing happens yet."""
    visitor, form = await posted(request)
    try:
        program, reason, severity = _trigger_fields(form)
        runbook = visitor.api.runbook(program)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "trigger.html", status=refusal.status, refusal=refusal,
                      posted=dict(form.pairs), **_trigger_context(visitor, form.get("program")))
    blocked = bridge.trigger_blocked(runbook, visitor.actor.for_program(program))
    return render(request, visitor, "confirm.html", program=program, runbook=runbook, reason=reason,
                  severity=severity.value, blocked=blocked)


@router.post("/pauses")
async def trigger(request: Request) -> Response:
    """Step 3: pull the switch (through the API's trigger route), then watch the pause contain."""
    visitor, form = await posted(request)
    try:
        program, reason, severity = _trigger_fields(form)
        started, problems = await bridge.trigger(visitor.api, program, visitor.actor, reason, severity)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "trigger.html", status=refusal.status, refusal=refusal,
                      posted=dict(form.pairs), **_trigger_context(visitor, form.get("program")))
    for problem in problems:
        visitor.flash(f"Deployment problem: {problem}")
    message = "Pause started: containment is under way." if started else \
        "A pause of this program was already open; it is shown here (nothing was started again)."
    return done(visitor, f"/console/pauses/{quote(program, safe='')}", message)
