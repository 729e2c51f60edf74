"""Who saw what through break-glass grants: entries as reviewers read them beside the exposure's who saw what."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pausegate.models.base import Model


class BreakGlassRead(Model):
    """One object a grant's role read (or tried to) in the grant's window, from the grant's sealed
    who-saw-what document, labelled as the break-glass read it is."""

    kind: Literal["break-glass"] = "break-glass"
    grant: str
    holder: str = Field(description="The person the grant was for (their identity).")
    role: str = Field(description="The grant's login role: the user the server's log names.")
    dataset: str
    tables: list[str] = Field(description="What the grant gave: tables (with their columns where only some), "
                              "quarantined copies.")
    object: str = Field(description="The table reached, schema.table.")
    path: str = Field(default="direct", description="direct, through OBJECT, or possible (WHY).")
    reads: int = Field(ge=0, description="Statements that read it and succeeded.")
    failed: int = Field(ge=0, description="Statements that tried and failed.")
    first_at: datetime | None = None
    last_at: datetime | None = None
    document_sha256: str = Field(description="Digest of the grant's who-saw-what document the pause recorded.")
