"""The digests approvals bind to: of the plan, of the completed checklist, and of the two together.

An approval names the digest of the plan together with the completed checklist and its
evidence, so changing either (a new plan, an amended item, other evidence) makes every
earlier approval stale. Each is a SHA-256 over canonical JSON (``pausegate.canonical``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pausegate.canonical import canonical_json, sha256_hex
from pausegate.models.checklist import ItemStatus
from pausegate.models.plan import ResumePlan

# Plan fields added later, left out of the digest while unset: a plan without them keeps the digest
# it had before they existed, so approvals (and recorded histories) stay bound to it.
_LATER_PLAN_FIELDS = ("collection", "consent_required", "data_actions", "copies")


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
