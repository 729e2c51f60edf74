"""Which enrolled keys count for a pause: the enrollment rule, pure.

A key counts when its holder enrolled it and an admin other than the holder confirmed it, before the
pause started. A key enrolled by someone other than its holder, or after the pause started, counts for
that pause only once a second admin (neither the holder nor the first) has confirmed it too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field

from pausegate.canonical import canonical_json
from pausegate.models.base import Model
from pausegate.models.signatures import EnrolledKey, KeyKind


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


# ---------------------------------------------------------------- the enrollment log's lines


EnrollmentAction = Literal["key.enrolled", "key.confirmed", "key.removed"]


class KeyChange(Model):
    """One line of the enrollment log: a key enrolled by its holder, confirmed by an admin, or removed.
    Lines are chained (``prev``: SHA-256 of the line before) by the chained-log rule of ``pausegate.records``."""

    at: datetime
    action: EnrollmentAction
    by: str = Field(max_length=512, description="Who did it (the holder enrolls, an admin confirms).")
    key_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    holder: str = Field(max_length=512)
    holder_email: str | None = Field(default=None, max_length=320)
    kind: KeyKind | None = None
    public_key: str | None = Field(default=None, max_length=4096)
    credential_id: str | None = Field(default=None, max_length=1024)
    prev: str


def line_digest(line: bytes) -> str:
    """SHA-256 of a line without its newline (what the next line and a pinned ring name)."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def line_of(change: KeyChange) -> bytes:
    return canonical_json(change.model_dump(mode="json"))


def replay(changes: Iterable[tuple[KeyChange, str]]) -> dict[str, EnrolledKey]:
    """The keys enrolled and not removed after ``changes`` ((change, its line's digest), oldest first).
    A confirmation names the key's holder as the log has it; one of another key or by its own holder is
    kept out (``why_not_counted`` would not count it either)."""
    keys: dict[str, EnrolledKey] = {}
    for change, digest in changes:
        if change.action == "key.enrolled" and change.kind is not None and change.public_key is not None:
            if change.key_id not in keys:
                keys[change.key_id] = EnrolledKey(
                    key_id=change.key_id, kind=change.kind, holder=change.holder, holder_email=change.holder_email,
                    public_key=change.public_key, credential_id=change.credential_id, enrolled_at=change.at,
                    enrolled_by=change.by, enrollment_line=digest)
        elif change.action == "key.confirmed" and (key := keys.get(change.key_id)) is not None:
            if change.holder == key.holder and change.by != key.holder and change.by not in key.confirmed_by \
                    and len(key.confirmed_by) < 10:
                keys[change.key_id] = key.model_copy(update={"confirmed_by": [*key.confirmed_by, change.by]})
        elif change.action == "key.removed":
            keys.pop(change.key_id, None)
    return keys
