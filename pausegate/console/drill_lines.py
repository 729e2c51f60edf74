"""The board's drills: a program's running or recent drill, shown apart from its pauses.

A drill is the pause practised on the canary scope; it is never an incident, so the board shows it in a
table of its own, labelled a drill, and no pause column or count of the board includes it. Only
programs the person holds a role in are read (``routes.board.shown_programs``), as for pauses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from temporalio.client import Client
from temporalio.service import RPCError

from pausegate.models.drill import DRILL_LABEL, DrillPhase, DrillState
from pausegate.temporal.drills import read_drill_by_id, recent_drill_ids

log = structlog.get_logger(__name__)

RECENT = timedelta(days=7)
"""How long after its start an ended drill stays on the board."""
READS_AT_ONCE = 16


@dataclass(frozen=True)
class DrillLine:
    """One drill on the board (``state`` None: it could not be read just now)."""

    program: str
    workflow_id: str
    state: DrillState | None
    label: str = DRILL_LABEL

    @property
    def running(self) -> bool:
        return self.state is not None and self.state.phase not in (DrillPhase.RESTORED, DrillPhase.RESTORE_FAILED)


async def drill_lines(client: Client, programs: list[str], now: datetime) -> list[DrillLine]:
    """The running or recent drill of each of ``programs``, in the order given."""
    latest = await recent_drill_ids(client, programs, now - RECENT)
    limit = asyncio.Semaphore(READS_AT_ONCE)

    async def one(program: str, workflow_id: str) -> DrillLine:
        async with limit:
            try:
                return DrillLine(program, workflow_id, await read_drill_by_id(client, workflow_id))
            except RPCError as exc:  # a drill is shown as unreadable, never hidden nor failing the board
                log.warning("drill_not_read", error=str(exc)[:200])
                return DrillLine(program, workflow_id, None)

    return list(await asyncio.gather(*(one(p, latest[p]) for p in programs if p in latest)))
