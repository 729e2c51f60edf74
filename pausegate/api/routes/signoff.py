"""Sign-off: approving the resume plan, or voting to decommission the program."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from pausegate.api.actions import approver_role, perform
from pausegate.api.deps import ActorDep, IdempotencyKey, ProgramPath, StateDep
from pausegate.api.models import Receipt
from pausegate.api.requests import ApproveRequest, DecommissionRequest
from pausegate.api.responses import ACTION_ERRORS
from pausegate.api.routes.keys import signing_key_of
from pausegate.models.updates import ApproveInput, DecommissionInput

router = APIRouter(tags=["sign-off"])


@router.post("/pauses/{program}/approvals", response_model=Receipt, responses=ACTION_ERRORS)
async def approve_plan(
    program: ProgramPath,
    body: ApproveRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Approve the current plan and review by the digest the approver reviewed."""
    role = await approver_role(state, program, actor, body.role, "approve_plan")
    # The key as the enrollment log has it, for one enrolled after the pause pinned its ring (the workflow
    # prefers the pinned one and counts a later one only as the enrollment rule allows).
    key = await asyncio.to_thread(signing_key_of, state, body.envelope)
    return await perform(state, program, actor, "approve_plan", idempotency_key, ApproveInput, admitted=True,
                         role=role, digest=body.digest, comment=body.comment, envelope=body.envelope, key=key)


@router.post("/pauses/{program}/decommission", response_model=Receipt, responses=ACTION_ERRORS)
async def decommission(
    program: ProgramPath,
    body: DecommissionRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Vote to end the program for good (same quorum and separation of duties as a resume)."""
    role = await approver_role(state, program, actor, body.role, "decommission")
    return await perform(state, program, actor, "decommission", idempotency_key, DecommissionInput, admitted=True,
                         role=role, reason=body.reason)
