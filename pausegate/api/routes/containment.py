"""Containment the commander accepts as incomplete: unreachable agents, residual dataset access."""

from __future__ import annotations

from fastapi import APIRouter

from pausegate.api.actions import perform
from pausegate.api.deps import ActorDep, IdempotencyKey, ProgramPath, StateDep
from pausegate.api.models import Receipt, WaiveRequest, WaiveResidualRequest
from pausegate.api.responses import ACTION_ERRORS
from pausegate.models.pause import WaiveAgentsInput, WaiveResidualInput

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
