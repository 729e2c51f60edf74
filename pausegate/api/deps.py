"""Dependencies routes share, as ``Annotated`` aliases: the shared state, the caller, common parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPBearer

from pausegate.api.errors import ApiError
from pausegate.api.state import ApiState
from pausegate.models.people import Actor


def get_state(request: Request) -> ApiState:
    """The ``ApiState`` that ``create_app`` put on the app."""
    state: ApiState = request.app.state.api
    return state


# Only for the OpenAPI document (security scheme, the docs' "Authorize" button); the gate verifies the token.
_bearer_scheme = HTTPBearer(auto_error=False, description="A local token (pgt_…) or an OIDC JWT.")


def current_actor(request: Request, _: Annotated[Any, Depends(_bearer_scheme)] = None) -> Actor:
    """The verified actor the gate attached to the request."""
    actor = getattr(request.state, "actor", None)
    if not isinstance(actor, Actor):  # the gate guards every non-public path; this is belt and braces
        raise ApiError(
            401,
            "unauthenticated",
            "send an Authorization: Bearer <token> header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor


StateDep = Annotated[ApiState, Depends(get_state)]
ActorDep = Annotated[Actor, Depends(current_actor)]
ProgramPath = Annotated[str, PathParam(max_length=200, description="The program's id (its runbook's program.id).")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a request safely: the same key (per actor and action) is applied at most once.",
    ),
]

__all__ = ["ActorDep", "IdempotencyKey", "ProgramPath", "StateDep", "current_actor", "get_state"]
