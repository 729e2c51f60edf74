"""Plumbing shared by the routes that act on a pause: authorising, recording refusals, sending updates.

Actions go through ``pausegate.temporal.pauses.act``, whose refusals land in the pause's timeline;
the routes refuse a few things themselves (triggering without a commander role, reading the scope
without a review role) and record those refusals the same way (``record_refusal``).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from temporalio.service import RPCError

from pausegate.api.errors import ApiError
from pausegate.api.models import Receipt
from pausegate.api.state import ApiState
from pausegate.errors import ActionRefused, PauseNotFound
from pausegate.models.pause import Actor, RefusalInput
from pausegate.policy import authority
from pausegate.temporal.pauses import act, pause_handle, read_status
from workflows.pause import PauseWorkflow

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def record_refusal(state: ApiState, program: str, actor: Actor, action: str, reason: str) -> None:
    """Put a refusal the API decided in the pause's timeline, or, when no open pause can hold
    it (none yet, ended, or Temporal unreachable), in the API's refusal log."""
    try:
        await pause_handle(state.client, program).signal(
            PauseWorkflow.record_refusal, RefusalInput(actor=actor.id, action=action, reason=reason[:2000])
        )
    except RPCError as exc:
        await asyncio.to_thread(
            state.refusals.append, actor=actor.id, roles=actor.roles, program=program, action=action, reason=reason
        )
        log.info("refusal_logged", program=program, actor=actor.id, action=action, pause_status=str(exc.status))


async def authorise(state: ApiState, program: str, actor: Actor, action: str, decide: Callable[[], T]) -> T:
    """Run a rule of ``pausegate.policy.authority``; a refusal is recorded, then raised."""
    try:
        return decide()
    except ActionRefused as exc:
        await record_refusal(state, program, actor, f"refused.{action}", f"{exc.code}: {exc.reason}")
        log.info("action_refused", program=program, actor=actor.id, action=action, code=exc.code)
        raise


def update_id(actor: Actor, action: str, idempotency_key: str | None) -> str:
    # One id for every attempt of this request: Temporal applies an update id at most once, so a
    # retried request (same Idempotency-Key) or a retried RPC never doubles an action.
    if idempotency_key:
        digest = hashlib.sha256(f"{actor.id}\0{action}\0{idempotency_key}".encode()).hexdigest()[:32]
        return f"api-{digest}"
    return f"api-{uuid.uuid4().hex}"


async def send_update(
    state: ApiState, program: str, actor: Actor, action: Any, name: str, idempotency_key: str | None
) -> Receipt:
    """Send ``action`` to the pause within the pause's update limit; a missing or ended pause
    becomes 404 or 409."""
    uid = update_id(actor, name, idempotency_key)
    bound = log.bind(pause=program, actor=actor.id, action=name)
    try:
        receipt = await state.limiter.run(program, lambda: act(state.client, program, action, update_id=uid))
    except PauseNotFound:
        try:
            status = await read_status(state.client, program)
        except PauseNotFound:
            raise ApiError(404, "no_pause", f"no pause for program {program!r}") from None
        raise ApiError(409, "wrong_state", f"the pause is {status.phase.value} and takes no more actions") from None
    except ActionRefused as exc:
        bound.info("action_refused", code=exc.code)
        raise
    bound.info("action_accepted", phase=receipt.phase.value)
    return Receipt(program=program, state=receipt.phase, message=receipt.message, digest=receipt.digest, actor=actor.id)


def build(model: type[Any], **fields: Any) -> Any:
    """``model(**fields)``, its validation errors answered 422 like a body that does not validate."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ApiError(422, "invalid_request", "; ".join(problems)[:2000]) from None


async def perform(
    state: ApiState, program: str, actor: Actor, name: str, idempotency_key: str | None, model: type[Any],
    **fields: Any,
) -> Receipt:
    """Build the update from the verified actor and the body's fields, and send it to the pause."""
    state.runbook(program)  # 404 for a program without a runbook, before anything reaches Temporal
    return await send_update(state, program, actor, build(model, actor=actor, **fields), name, idempotency_key)


async def approver_role(state: ApiState, program: str, actor: Actor, role: str | None, action: str) -> str:
    """The approver role an approval or decommission vote is cast as."""
    runbook = state.runbook(program)
    what = "approving a plan" if action == "approve_plan" else "voting to decommission"
    return await authorise(state, program, actor, action, lambda: authority.approver_role(runbook, actor, role, what))
