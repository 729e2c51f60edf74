"""The rules of a drill: who may start one, when, the state it starts with and what its restore leaves.

Pure: the workflow, the client and the tests call them alike.
"""

from __future__ import annotations

from datetime import datetime

from pausegate.errors import ActionRefused
from pausegate.models.drill import DRILL_CHECKLIST, ChecklistMark, DrillOutcome, DrillRequest, DrillState
from pausegate.policy.authority import require_commander

NO_CANARY = "no_canary"
PAUSE_OPEN = "pause_open"


def check_may_drill(request: DrillRequest, *, pause_open: bool) -> None:
    """Refuse a drill that is not a commander's, one on a runbook without a canary, or one while a real
    pause of the program is open (the drill must never become part of an incident)."""
    require_commander(request.runbook, request.commander, "starting a drill")
    if request.runbook.canary is None:
        raise ActionRefused(NO_CANARY, f"the runbook of {request.program} names no canary to drill on")
    if pause_open:
        raise ActionRefused(PAUSE_OPEN, f"a pause of {request.program} is open: no drill while it is")


def new_drill(drill_id: str, request: DrillRequest, now: datetime, suffix: str) -> DrillState:
    """The state of a drill just started; ``suffix`` keeps two drills of one second apart."""
    program = request.runbook.program.id
    stamp = f"{now:%Y%m%dT%H%M%SZ}-{suffix}"
    return DrillState(
        drill_id=drill_id,
        drill_key=f"{program}/drill-{stamp}",
        incident_id=f"{program}-drill-{stamp}",
        program=program,
        commander=request.commander.id,
        started_at=now,
        checklist=[ChecklistMark(id=i, title=title) for i, title in DRILL_CHECKLIST],
    )


def resumes_agents(outcome: DrillOutcome | None) -> bool:
    """Whether the restore resumes the canary agents: not when a real pause began, whose halt they are
    now part of (the restore leaves alone what lies inside the real pause's scope)."""
    return outcome != DrillOutcome.PREEMPTED


def seconds_between(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 3)
