"""Local users and their change log (admins only).

The users file (``api.users_file``) or, with several replicas, the API's database is the store behind
these routes (a ``pausegate.auth.users.store.UserStore``); every change made here is appended to
its signed change log with the users' new digest, and a change made to the store by other means is
found and recorded. A caller without the admin
role is refused (403) and the refusal goes to the API's refusal log: no pause concerns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam

from pausegate.api.actions import log_refusal
from pausegate.api.deps import ActorDep, StateDep
from pausegate.api.errors import ApiError
from pausegate.api.models import ErrorBody
from pausegate.api.state import ApiState
from pausegate.auth.local import UnknownUser, UserExists
from pausegate.auth.users.store import UserStore
from pausegate.auth.users.views import IssuedUser, NewUser, RoleChange, UserLogView, UserView
from pausegate.errors import ActionRefused
from pausegate.models.people import Actor
from pausegate.policy import authority

log = structlog.get_logger(__name__)
T = TypeVar("T")

router = APIRouter(tags=["users"])

UserName = Annotated[str, PathParam(max_length=200, description="The local user's name.")]

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "`user_exists`, or `last_admin`: no local user would keep the admin role."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "`unknown_user`."}}


async def _admin(state: ApiState, actor: Actor, action: str, what: str) -> UserStore:
    """The users directory, for an admin; anyone else is refused, the refusal logged."""
    try:
        authority.require_user_admin(actor, what)
    except ActionRefused as exc:
        await log_refusal(state, None, actor, action, exc)
        log.info("action_refused", actor=actor.id, action=action, code=exc.code)
        raise
    return state.users()


async def _change(call: Callable[[], T]) -> T:
    """Run a change to the users file off the event loop (it locks, writes and fsyncs), its errors
    answered as HTTP errors."""
    try:
        return await asyncio.to_thread(call)
    except UnknownUser as exc:
        raise ApiError(404, "unknown_user", f"no local user {str(exc)!r}") from None
    except UserExists as exc:
        raise ApiError(409, "user_exists", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "invalid_user", str(exc)[:2000]) from None


@router.post("/users", response_model=IssuedUser, status_code=201, responses=CONFLICT)
async def add_user(body: NewUser, state: StateDep, actor: ActorDep) -> IssuedUser:
    """Add a local user (or, with `replace`, issue a new token and set the roles) and return the token,
    shown this once; only its SHA-256 is kept. Roles are `NAME` or `NAME@PROGRAM` (that program only)."""
    users = await _admin(state, actor, "add_user", "adding users")
    user, token = await _change(lambda: users.issue(actor, body.name, body.roles, replace=body.replace))
    log.info("user_added", by=actor.id, user=user.name, roles=user.roles, replaced=body.replace)
    return IssuedUser(**UserView.of(user).model_dump(), token=token)


@router.get("/users", response_model=list[UserView])
async def list_users(state: StateDep, actor: ActorDep) -> list[UserView]:
    """Every local user with their roles (never a token or its hash)."""
    users = await _admin(state, actor, "list_users", "listing users")
    return [UserView.of(u) for u in await asyncio.to_thread(users.users)]


@router.get("/users/log", response_model=UserLogView)
async def user_log(
    state: StateDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest this many entries.")] = 100,
) -> UserLogView:
    """Every change to local users and roles, newest last: who made it, to whom, the users file's digest
    after it; with every problem of the log's chain and signed head. The users file is checked against
    the log first, so a change made to it outside the API shows here as `users_file.changed_outside_api`."""
    users = await _admin(state, actor, "read_user_log", "reading the users' change log")
    return await asyncio.to_thread(users.view, limit)


@router.put("/users/{name}/roles", response_model=UserView, responses={**CONFLICT, **NOT_FOUND})
async def set_roles(name: UserName, body: RoleChange, state: StateDep, actor: ActorDep) -> UserView:
    """Give a local user exactly these roles (their token stays valid). Refused (409 `last_admin`) if no
    local user would keep the admin role."""
    users = await _admin(state, actor, "change_roles", "changing users' roles")
    user = await _change(lambda: users.set_roles(actor, name, body.roles))
    log.info("user_roles_changed", by=actor.id, user=name, roles=user.roles)
    return UserView.of(user)


@router.delete("/users/{name}", status_code=204, response_class=Response, responses={**CONFLICT, **NOT_FOUND})
async def remove_user(name: UserName, state: StateDep, actor: ActorDep) -> Response:
    """Remove a local user: their token proves nobody from now on. Refused (409 `last_admin`) for the last
    local user with the admin role."""
    users = await _admin(state, actor, "remove_user", "removing users")
    await _change(lambda: users.remove(actor, name))
    log.info("user_removed", by=actor.id, user=name)
    return Response(status_code=204)
