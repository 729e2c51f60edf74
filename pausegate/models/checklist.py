"""The review checklist: its items, their completion, and the evidence reviewers attach."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from pausegate.models.base import Model, Mutable
from pausegate.models.evidence import SHA256_HEX
from pausegate.models.limits import MAX_NOTE


class EvidenceAttachment(Model):
    """Evidence a reviewer attaches to a checklist item: a reference and a digest, not content."""

    name: str = Field(min_length=1, max_length=100, description="Which required evidence this is.")
    uri: str = Field(min_length=1, max_length=1000)
    sha256: str | None = Field(default=None, pattern=SHA256_HEX)
    note: str = Field(default="", max_length=MAX_NOTE)


class ItemStatus(Mutable):
    """A checklist item and its completion."""

    id: str
    title: str
    roles: list[str]
    depends_on: list[str]
    evidence_required: list[str]
    due_at: datetime | None = None
    completed_by: str | None = None
    completed_at: datetime | None = None
    evidence: list[EvidenceAttachment] = Field(default_factory=list)
    note: str = ""
    reminded: bool = False

    @property
    def done(self) -> bool:
        return self.completed_by is not None
