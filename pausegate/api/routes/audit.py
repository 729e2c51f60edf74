"""The API's refusal log: refusals no open pause could hold."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Annotated

import structlog
from fastapi import APIRouter, Query

from pausegate.api.actions import log_refusal
from pausegate.api.deps import ActorDep, StateDep
from pausegate.api.models import RefusalsView
from pausegate.api.refusal_log import RefusalEntry
from pausegate.errors import ActionRefused
from pausegate.policy import authority

log = structlog.get_logger(__name__)

router = APIRouter(tags=["audit"])


@router.get("/refusals", response_model=RefusalsView)
async def list_refusals(
    state: StateDep,
    actor: ActorDep,
    program: Annotated[str | None, Query(max_length=64, description="Only refusals on this program.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest this many.")] = 100,
) -> RefusalsView:
    """Refusals no open pause could hold (admins only), newest last, and whether their chain is intact."""
    refusals = state.refusals
    try:
        authority.require_admin(actor, "reading the refusal log")
    except ActionRefused as exc:
        # Into the log, not a timeline: this refusal concerns no program (coalesced per minute like the rest).
        await log_refusal(state, None, actor, "read_refusals", exc)
        log.debug("action_refused", actor=actor.id, action="read_refusals", code=exc.code)
        raise

    def read() -> RefusalsView:
        kept: deque[RefusalEntry] = deque(maxlen=limit)
        kept.extend(e for e in refusals.entries() if program is None or e.program == program)
        return RefusalsView(entries=list(kept), chain_problems=refusals.problems())

    return await asyncio.to_thread(read)
