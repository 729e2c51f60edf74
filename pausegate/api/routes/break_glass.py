"""Break-glass access during a pause: ask for it, approve it, return it early, read the grants.

The rules are the workflow's (``pausegate.policy.break_glass``): a refusal comes back as the
validator's code and reason, and is recorded in the pause's timeline like any other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import Field

from pausegate.analysis.standing_exceptions import runbook_roles, standing_exceptions
from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.api.actions import admit, perform
from pausegate.api.deps import ActorDep, IdempotencyKey, ProgramPath, StateDep
from pausegate.api.models import Receipt
from pausegate.api.responses import ACTION_ERRORS
from pausegate.evidence.interface import read_recorded
from pausegate.models.base import Model
from pausegate.models.break_glass import (
    MAX_GRANT_COPIES,
    MAX_GRANT_TABLES,
    MAX_VERIFIER,
    ApproveBreakGlassInput,
    BreakGlassView,
    EndBreakGlassInput,
    RequestBreakGlassInput,
    TableAccess,
)
from pausegate.models.limits import MAX_NOTE
from pausegate.policy import authority
from pausegate.temporal.pauses import read_status

router = APIRouter(tags=["break-glass"])
GrantPath = Annotated[str, PathParam(max_length=20, description="The grant's id in the pause (g1, g2, ...).")]


class BreakGlassRequest(Model):
    """Read access to tables (or some columns) of a paused dataset, or to copies of it the pause quarantined,
    for a reason and a time."""

    dataset: str = Field(min_length=1, max_length=100)
    tables: list[TableAccess] = Field(default_factory=list, max_length=MAX_GRANT_TABLES)
    copies: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_GRANT_COPIES, description="Ids of copies the pause quarantined.")
    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    duration: timedelta = Field(description="ISO 8601 (PT30M); at most the runbook's break_glass.max_duration.")
    emergency: bool = Field(default=False, description="Start now without approval (where the runbook allows).")
    scram_verifier: str | None = Field(default=None, max_length=MAX_VERIFIER,
                                       description="SCRAM-SHA-256 verifier of the password the holder will use.")


class EndGrantRequest(Model):
    """Return a grant before its end."""

    reason: str = Field(default="returned early", min_length=1, max_length=MAX_NOTE)


@router.get("/pauses/{program}/break-glass", response_model=BreakGlassView)
async def read_grants(program: ProgramPath, state: StateDep, actor: ActorDep) -> BreakGlassView:
    """The pause's grants (who, what, why, until when, how each ended) and the runbook's static break-glass
    roles as standing exceptions with their reads in the exposure window (review roles; others see none)."""
    runbook = await admit(state, program, actor, "read_break_glass", what="reading grants", rate_limited=False)
    if not authority.may_read_access(runbook, actor):
        return BreakGlassView(grants=[], standing=[])
    status = await read_status(state.client, program)
    exposure = status.containment.exposure
    report = (WhoSawWhat.model_validate(await read_recorded(state.store, exposure.report))
              if exposure is not None else None)
    grants = [] if status.break_glass is None else status.break_glass.grants
    return BreakGlassView(grants=[g.model_copy(update={"scram_verifier": None}) for g in grants],
                          standing=standing_exceptions(runbook_roles(runbook), report))


@router.post("/pauses/{program}/break-glass", response_model=Receipt, responses=ACTION_ERRORS)
async def request_grant(
    program: ProgramPath,
    body: BreakGlassRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Ask for break-glass access (403 without a requester role, 409 outside the review, 422 too long)."""
    return await perform(state, program, actor, "request_break_glass", idempotency_key, RequestBreakGlassInput,
                         **body.model_dump())


@router.post("/pauses/{program}/break-glass/{grant_id}/approve", response_model=Receipt, responses=ACTION_ERRORS)
async def approve_grant(
    program: ProgramPath,
    grant_id: GrantPath,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """An approver (never the holder) starts a requested grant."""
    return await perform(state, program, actor, "approve_break_glass", idempotency_key, ApproveBreakGlassInput,
                         grant_id=grant_id)


@router.post("/pauses/{program}/break-glass/{grant_id}/end", response_model=Receipt, responses=ACTION_ERRORS)
async def end_grant(
    program: ProgramPath,
    grant_id: GrantPath,
    body: EndGrantRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The holder returns a grant early, or the commander takes it back."""
    return await perform(state, program, actor, "end_break_glass", idempotency_key, EndBreakGlassInput,
                         grant_id=grant_id, reason=body.reason)
