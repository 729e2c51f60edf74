"""Containment the commander accepts as incomplete (unreachable agents, residual dataset access), and
blocked containment steps the commander retries or waives."""

from __future__ import annotations

from fastapi import APIRouter

from pausegate.api.actions import perform
from pausegate.api.deps import ActorDep, IdempotencyKey, ProgramPath, StateDep
from pausegate.api.models import Receipt
from pausegate.api.requests import RetryStepRequest, WaiveRequest, WaiveResidualRequest, WaiveStepRequest
from pausegate.api.responses import ACTION_ERRORS
from pausegate.models.updates import RetryStepInput, WaiveAgentsInput, WaiveResidualInput, WaiveStepInput

router = APIRouter(tags=["containment"])


@router.post("/pauses/{program}/waivers", response_model=Receipt, responses=ACTION_ERRORS)
async def waive_agents(
    program: ProgramPath,
    body: WaiveRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The commander stops waiting for agents that cannot be reached, with a reason."""
    return await perform(state, program, actor, "waive_agents", idempotency_key, WaiveAgentsInput,
                         agent_ids=body.agent_ids, all_unconfirmed=body.all_unconfirmed, reason=body.reason)


@router.post("/pauses/{program}/residual-waivers", response_model=Receipt, responses=ACTION_ERRORS)
async def waive_residual(
    program: ProgramPath,
    body: WaiveResidualRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The commander accepts a dataset's residual access (superusers, owners), with a reason."""
    return await perform(state, program, actor, "waive_residual", idempotency_key, WaiveResidualInput,
                         dataset=body.dataset, reason=body.reason)


@router.post("/pauses/{program}/blocked-steps/retry", response_model=Receipt, responses=ACTION_ERRORS)
async def retry_step(
    program: ProgramPath,
    body: RetryStepRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The commander runs a blocked containment step again, once its cause is fixed (409 not_blocked otherwise)."""
    return await perform(state, program, actor, "retry_step", idempotency_key, RetryStepInput, step=body.step)


@router.post("/pauses/{program}/blocked-steps/waive", response_model=Receipt, responses=ACTION_ERRORS)
async def waive_step(
    program: ProgramPath,
    body: WaiveStepRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The commander stops waiting for a blocked containment step, with a reason (409 not_blocked otherwise)."""
    return await perform(state, program, actor, "waive_step", idempotency_key, WaiveStepInput,
                         step=body.step, reason=body.reason)
