"""The watch of a resumed program: read it, and withdraw an employee's consent through it."""

from __future__ import annotations

from fastapi import APIRouter

from pausegate.api.actions import admit, authorise, record_refusal, update_id
from pausegate.api.deps import ActorDep, IdempotencyKey, ProgramPath, StateDep
from pausegate.api.responses import ACTION_ERRORS
from pausegate.errors import ActionRefused
from pausegate.models.watch import WatchReceiptOut, WatchState, WithdrawConsentInput, WithdrawConsentRequest
from pausegate.policy import authority
from pausegate.temporal.watches import read_watch, withdraw_consent

router = APIRouter(tags=["watch"])


@router.get("/pauses/{program}/watch", response_model=WatchState, responses=ACTION_ERRORS)
async def get_watch(program: ProgramPath, state: StateDep, actor: ActorDep) -> WatchState:
    """The watch of a resumed program: its checks, the last one's outcome, withdrawals, drift (404: never watched)."""
    await admit(state, program, actor, "read_watch", what="reading the watch", rate_limited=False)
    return await read_watch(state.client, program)


@router.post("/pauses/{program}/watch/consent-withdrawals", response_model=WatchReceiptOut,
             responses=ACTION_ERRORS)
async def withdraw(
    program: ProgramPath,
    body: WithdrawConsentRequest,
    state: StateDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> WatchReceiptOut:
    """A consent role (the runbook's watch.consent_roles, e.g. privacy-officer) records an employee's withdrawn
    consent: the watch halts that employee's agents now (offline ones when they return)."""
    action = "withdraw_consent"
    runbook = await admit(state, program, actor, action)
    await authorise(state, program, actor, action, lambda: authority.require_consent_officer(runbook, actor))
    request = WithdrawConsentInput(actor=actor, employee=body.employee, reason=body.reason)
    uid = update_id(state, actor, action, idempotency_key)
    try:
        receipt = await state.limiter.run(f"watch/{program}", actor.id,
                                          lambda: withdraw_consent(state.client, program, request, update_id=uid))
    except ActionRefused as exc:
        await record_refusal(state, program, actor, action, exc)
        raise
    return WatchReceiptOut(program=program, status=receipt.status, message=receipt.message, actor=actor.id)
