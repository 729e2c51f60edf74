"""Plumbing shared by the routes that act on a pause: admitting, authorising, recording refusals,
sending updates.

Every action on a program goes through ``admit`` first: a caller with no role in the program's
runbook is refused there, before anything reaches Temporal, and the refusal goes to the API's
refusal log (coalesced: ``pausegate.api.refusals``); then the caller's rate limit is taken. A
refusal of a caller who holds a role (decided here by ``pausegate.policy.authority``, or by the
workflow's validators) goes to the pause's timeline through the same recorder, at most one signal
per program, actor, action and minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError

from pausegate.api.errors import ApiError
from pausegate.api.models import Receipt
from pausegate.api.refusals import Refusal
from pausegate.api.state import ApiState
from pausegate.errors import ActionRefused, PauseNotFound
from pausegate.models.people import Actor
from pausegate.models.runbook import Runbook
from pausegate.policy import authority
from pausegate.temporal import ids, pauses

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _refusal(program: str | None, actor: Actor, action: str, exc: ActionRefused) -> Refusal:
    return Refusal(actor=actor.id, roles=tuple(actor.roles), program=program, action=f"refused.{action}",
                   reason=f"{exc.code}: {exc.reason}"[:2000])


async def record_refusal(state: ApiState, program: str, actor: Actor, action: str, exc: ActionRefused) -> None:
    """Put the refusal of a caller with a role in the program in the pause's timeline (coalesced; the
    refusal log when no open pause can hold it)."""
    await state.recorder.in_timeline(_refusal(program, actor, action, exc))


async def log_refusal(state: ApiState, program: str | None, actor: Actor, action: str, exc: ActionRefused) -> None:
    """Put a refusal that no pause may hold in the API's refusal log (coalesced)."""
    await state.recorder.in_log(_refusal(program, actor, action, exc))


async def admit(
    state: ApiState, program: str, actor: Actor, action: str, *, what: str = "acting", rate_limited: bool = True
) -> Runbook:
    """The program's runbook, for a caller who holds a role in it and is within their rate limit.

    404 for a program without a runbook; 403 (into the refusal log, never into the workflow) for a
    caller with no role in it; 429 over the rate limit (counted, not recorded one by one).
    """
    runbook = state.runbook(program)
    try:
        authority.require_program_role(runbook, actor, what)
    except ActionRefused as exc:
        await log_refusal(state, program, actor, action, exc)
        log.debug("action_refused_no_role", program=program, actor=actor.id, action=action)
        raise
    if rate_limited:
        await state.rate_limiter.acquire(actor.id)
    return runbook


async def authorise(state: ApiState, program: str, actor: Actor, action: str, decide: Callable[[], T]) -> T:
    """Run a rule of ``pausegate.policy.authority`` for a caller ``admit`` let in; a refusal is
    recorded, then raised."""
    try:
        return decide()
    except ActionRefused as exc:
        await record_refusal(state, program, actor, action, exc)
        log.debug("action_refused", program=program, actor=actor.id, action=action, code=exc.code)
        raise


def update_id(state: ApiState, actor: Actor, action: str, idempotency_key: str | None) -> str:
    # One id for every attempt of this request: Temporal applies an update id at most once, so a
    # retried request (same Idempotency-Key) or a retried RPC never doubles an action. Update ids are
    # shown to anyone with namespace access: a keyed digest, never the actor's name (pausegate.temporal.ids).
    if idempotency_key:
        return ids.update_id(ids.identifier_key(state.client), actor.id, action, idempotency_key)
    return f"api-{uuid.uuid4().hex}"


async def send_update(
    state: ApiState, program: str, actor: Actor, action: Any, name: str, idempotency_key: str | None
) -> Receipt:
    """Send ``action`` to the pause within the pause's fair share of updates; a refusal is recorded;
    a missing or ended pause becomes 404 or 409."""
    uid = update_id(state, actor, name, idempotency_key)
    bound = log.bind(pause=program, actor=actor.id, action=name)
    try:
        receipt = await state.limiter.run(
            program, actor.id, lambda: pauses.send_update(state.client, program, action, update_id=uid))
    except PauseNotFound:
        try:
            status = await pauses.read_status(state.client, program)
        except PauseNotFound:
            raise ApiError(404, "no_pause", f"no pause for program {program!r}") from None
        ended = ActionRefused("wrong_state", f"the pause is {status.phase.value} and takes no more actions")
        await log_refusal(state, program, actor, name, ended)  # no open pause's timeline can hold it
        raise ApiError(409, ended.code, ended.reason) from None
    except ActionRefused as exc:
        # debug: a flood of refusals must not become a flood of log lines (the recorder logs each record)
        bound.debug("action_refused", code=exc.code)
        await record_refusal(state, program, actor, name, exc)
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
    *, admitted: bool = False, **fields: Any,
) -> Receipt:
    """Build the update from the verified actor and the body's fields, and send it to the pause
    (``admit`` first, unless the route already did)."""
    if not admitted:
        await admit(state, program, actor, name)
    return await send_update(state, program, actor, build(model, actor=actor, **fields), name, idempotency_key)


async def approver_role(state: ApiState, program: str, actor: Actor, role: str | None, action: str) -> str:
    """The approver role an approval or decommission vote is cast as (``admit`` first)."""
    runbook = await admit(state, program, actor, action)
    what = "approving a plan" if action == "approve_plan" else "voting to decommission"
    return await authorise(state, program, actor, action, lambda: authority.approver_role(runbook, actor, role, what))
