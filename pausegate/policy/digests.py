"""Digests that approvals bind to.

An approval names the digest of the plan together with the completed checklist and its
evidence, so changing either (a new plan, an amended item, other evidence) makes every
earlier approval stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from pausegate.models.pause import ItemStatus, ResumePlan


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no insignificant whitespace."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan_digest(plan: ResumePlan) -> str:
    """Digest of a resume plan alone."""
    return sha256_hex(canonical_json(plan))


def checklist_digest(items: Iterable[ItemStatus]) -> str:
    """Digest of the checklist's completions and their evidence (not of reminders or due times)."""
    return sha256_hex(
        canonical_json(
            [
                {
                    "id": i.id,
                    "completed_by": i.completed_by,
                    "note": i.note,
                    "evidence": [e.model_dump(mode="json") for e in i.evidence],
                }
                for i in sorted(items, key=lambda i: i.id)
            ]
        )
    )


def approval_digest(plan_sha: str, checklist_sha: str) -> str:
    """What an approver signs off: this plan, given this completed review."""
    return sha256_hex(canonical_json({"plan": plan_sha, "checklist": checklist_sha}))
