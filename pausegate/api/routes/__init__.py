"""The /v1 routes, one router per resource."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from pausegate.api.responses import ERRORS
from pausegate.api.routes import (
    audit,
    auth,
    break_glass,
    containment,
    drills,
    keys,
    pauses,
    review,
    signoff,
    users,
    watch,
)
from pausegate.auth.scoping import resolve_program_roles

# First of every route's dependencies: the actor a route sees holds the roles effective for the program it acts on.
api_router = APIRouter(prefix="/v1", responses=ERRORS, dependencies=[Depends(resolve_program_roles)])
for _resource in (auth, pauses, audit, review, signoff, containment, users, watch, keys, break_glass, drills):
    api_router.include_router(_resource.router)

__all__ = ["api_router"]
