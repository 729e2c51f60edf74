"""Canonical JSON and the digests approvals bind to.

One byte string per value (sorted keys, no insignificant whitespace, UTF-8, no NaN) is what
every digest in the project is taken over: evidence documents, manifests, plans, approvals.

An approval names the digest of the plan together with the completed checklist and its
evidence, so changing either (a new plan, an amended item, other evidence) makes every
earlier approval stale.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from pausegate.errors import EvidenceError

if TYPE_CHECKING:
    from pausegate.models.pause import ItemStatus, ResumePlan


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)


def canonical_json(document: Any) -> bytes:
    """One byte sequence per value: sorted keys, no insignificant whitespace, UTF-8, no NaN."""
    try:
        return _ENCODER.encode(document).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"document is not canonical-JSON serialisable: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Plan fields added later, left out of the digest while unset: a plan without them keeps the digest
# it had before they existed, so approvals (and recorded histories) stay bound to it.
_LATER_PLAN_FIELDS = ("collection", "consent_required", "data_actions")


def plan_digest(plan: ResumePlan) -> str:
    """Digest of a resume plan alone."""
    document = plan.model_dump(mode="json")
    for name in _LATER_PLAN_FIELDS:
        if document.get(name) in (None, False, []):
            document.pop(name, None)
    return sha256_hex(canonical_json(document))


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
