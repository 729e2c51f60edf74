"""Which enrolled keys count for a pause: the enrollment rule, pure.

A key counts when its holder enrolled it and an admin other than the holder confirmed it, before the
pause started. A key enrolled by someone other than its holder, or after the pause started, counts for
that pause only once a second admin (neither the holder nor the first) has confirmed it too.
"""

from __future__ import annotations

from datetime import datetime

from pausegate.models.signatures import EnrolledKey


def confirmations_needed(key: EnrolledKey, pinned_at: datetime) -> int:
    return 1 if key.enrolled_by == key.holder and key.enrolled_at <= pinned_at else 2


def why_not_counted(key: EnrolledKey, pinned_at: datetime) -> str | None:
    """Why ``key`` does not count for a pause pinned at ``pinned_at`` (None: it counts)."""
    confirmers = {c for c in key.confirmed_by if c != key.holder}
    needed = confirmations_needed(key, pinned_at)
    if len(confirmers) >= needed:
        return None
    how = []
    if key.enrolled_by != key.holder:
        how.append(f"enrolled by {key.enrolled_by[:80]}, not by its holder")
    if key.enrolled_at > pinned_at:
        how.append("enrolled after the pause started")
    because = f" ({'; '.join(how)})" if how else ""
    return (f"key {key.key_id[:12]}… of {key.holder[:80]} is confirmed by {len(confirmers)} admin(s) other than "
            f"its holder; it needs {needed}{because}")
