"""The review: the checklist and the resume plan."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from pausegate.api.actions import perform
from pausegate.api.deps import ActorDep, IdempotencyKey, ProgramPath, StateDep
from pausegate.api.models import Receipt
from pausegate.api.redaction import redact_items
from pausegate.api.requests import CompleteRequest, RejectRequest
from pausegate.api.responses import ACTION_ERRORS
from pausegate.api.routes.keys import signing_key_of
from pausegate.models.checklist import ItemStatus
from pausegate.models.plan import ResumePlan
from pausegate.models.updates import CompleteItemInput, ProposePlanInput, RejectPlanInput
from pausegate.policy import authority
from pausegate.temporal.pauses import read_status

router = APIRouter(tags=["review"])


@router.get("/pauses/{program}/checklist", response_model=list[ItemStatus])
async def read_checklist(program: ProgramPath, state: StateDep, actor: ActorDep) -> list[ItemStatus]:
    """The review checklist and who completed what (evidence and notes only for review roles)."""
    runbook = state.runbook(program)
    items = (await read_status(state.client, program)).checklist
    return list(items) if authority.may_read_access(runbook, actor) else redact_items(items)


@router.post("/pauses/{program}/checklist/{item_id}", response_model=Receipt, responses=ACTION_ERRORS)
async def complete_item(
    program: ProgramPath,
    item_id: Annotated[str, PathParam(max_length=100)],
    body: CompleteRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Complete (or amend) a checklist item with its evidence."""
    return await perform(state, program, actor, "complete_item", idempotency_key, CompleteItemInput,
                         item_id=item_id, evidence=body.evidence, note=body.note)


@router.post("/pauses/{program}/plan", response_model=Receipt, responses=ACTION_ERRORS)
async def propose_plan(
    program: ProgramPath,
    body: ResumePlan,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Propose (or replace) the resume plan; earlier approvals are void."""
    return await perform(state, program, actor, "propose_plan", idempotency_key, ProposePlanInput, plan=body)


@router.post("/pauses/{program}/plan/reject", response_model=Receipt, responses=ACTION_ERRORS)
async def reject_plan(
    program: ProgramPath,
    body: RejectRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Reject the current plan; it and its approvals are void. Where the runbook requires signatures, only
    a rejection statement signed with an enrolled key counts."""
    key = await asyncio.to_thread(signing_key_of, state, body.envelope)
    return await perform(state, program, actor, "reject_plan", idempotency_key, RejectPlanInput,
                         reason=body.reason, role=body.role, envelope=body.envelope, key=key)
