"""Where a pause is in its procedure: the state machine's states."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a pause is in its procedure (the state machine's states)."""

    ACTIVE = "ACTIVE"
    CONTAINING = "CONTAINING"
    UNDER_REVIEW = "UNDER_REVIEW"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    RESUMING = "RESUMING"
    RESUMED = "RESUMED"
    DECOMMISSIONED = "DECOMMISSIONED"


OPEN_PHASES = frozenset({Phase.ACTIVE, Phase.CONTAINING, Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL, Phase.RESUMING})
