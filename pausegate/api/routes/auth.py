"""Who the caller is."""

from __future__ import annotations

from fastapi import APIRouter

from pausegate.api.deps import ActorDep
from pausegate.api.models import WhoAmI

router = APIRouter(tags=["auth"])


@router.get("/whoami", response_model=WhoAmI)
async def whoami(actor: ActorDep) -> WhoAmI:
    """Who the bearer token says the caller is."""
    return WhoAmI(id=actor.id, roles=list(actor.roles))
