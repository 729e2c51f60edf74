"""The watch's workflow id, derived from its pause's (importable by the pause and the watch alike)."""

from __future__ import annotations

PAUSE_PREFIX, WATCH_PREFIX = "pause/", "watch/"


def watch_workflow_id(pause_workflow_id: str) -> str:
    """The one workflow id a program's watch has: its pause's id with ``watch/`` for ``pause/`` (whatever the
    pause's id is derived from, the watch's follows, and no workflow code needs more than its own id)."""
    return WATCH_PREFIX + pause_workflow_id.removeprefix(PAUSE_PREFIX)
