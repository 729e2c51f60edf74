"""What deriving the exposure's origins changes in a pause's state (pure, like ``transitions``)."""

from __future__ import annotations

from datetime import datetime

from pausegate.models.origins import OriginSummary
from pausegate.models.people import SYSTEM_ACTOR
from pausegate.models.state import PauseState


def origins_derived(state: PauseState, summary: OriginSummary, now: datetime) -> None:
    """The summary joins the containment progress; the timeline says when the data became readable
    (times and counts only: who and how are in the sealed document)."""
    state.containment.origins = summary
    if summary.readable_since is not None:
        since = f"readable company-wide since {summary.readable_since:%Y-%m-%d %H:%M:%S} UTC"
    elif summary.since_before_log:
        since = f"readable company-wide since before the oldest line ({summary.oldest_line:%Y-%m-%d %H:%M:%S} UTC)"
    else:
        since = "no company-wide path"
    state.record(now, SYSTEM_ACTOR, "containment.origins",
                 f"{since}; {summary.paths} paths: {summary.logged} opened in the log, {summary.before_log} before "
                 f"it, {summary.unknown} of unknown origin; document {summary.document.sha256[:12]}")
