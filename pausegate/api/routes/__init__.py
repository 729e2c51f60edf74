"""The /v1 routes, one router per resource."""

from __future__ import annotations

from fastapi import APIRouter

from pausegate.api.responses import ERRORS
from pausegate.api.routes import audit, auth, containment, pauses, review, signoff

api_router = APIRouter(prefix="/v1", responses=ERRORS)
for _resource in (auth, pauses, audit, review, signoff, containment):
    api_router.include_router(_resource.router)

__all__ = ["api_router"]
