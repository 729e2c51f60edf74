"""References to evidence: what workflow history may hold instead of the evidence itself."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pausegate.models.base import Model

SHA256_HEX = r"^[0-9a-f]{64}$"


URI_SCHEME = "evidence://"
MAX_PLANTS = 32
"""Planted objects listed on one reference: enough to name an insider's work, bounded against a flood."""


class PlantedObject(Model):
    """Something lying at a name the store writes that the store did not write: evidence of its own
    (of whoever put it there), listed by name, size and digest, never read as evidence."""

    name: str = Field(max_length=1100, description="Where it lies, relative to the store's root (or bucket prefix).")
    kind: Literal["file", "directory", "symlink", "other"] = "file"
    size_bytes: int = Field(default=0, ge=0)
    sha256: str | None = Field(default=None, pattern=SHA256_HEX, description="Digest of its bytes (files only).")


class EvidenceRef(Model):
    """A sealed piece of evidence in the evidence store: where it is and its digest, never its content."""

    uri: str = Field(max_length=1000, description="Location in the evidence store, e.g. evidence://<pause>/<name>.")
    sha256: str = Field(pattern=SHA256_HEX, description="Digest of the manifest (bundles) or of the file.")
    records: int = Field(default=0, ge=0, description="How many records it holds.")
    size_bytes: int = Field(default=0, ge=0)
    version_id: str | None = Field(
        default=None,
        max_length=1024,
        description="The object version the store wrote (S3 store): what reads fetch. None: a local store's.",
    )
    plants: list[PlantedObject] | None = Field(
        default=None,
        max_length=MAX_PLANTS,
        # left out when there are none, so that references (and the reports listing them) keep their bytes
        exclude_if=lambda plants: plants is None,
        description="What someone else had put at the names this evidence was meant for; the store then "
        "wrote it under a fresh name (this reference's uri). None: nothing was planted.",
    )

    @property
    def key(self) -> str:
        """The store key the reference points at (its URI without the scheme)."""
        return self.uri.removeprefix(URI_SCHEME)


class SnapshotResult(Model):
    """One audit source sealed for one pause."""

    source: str
    window_start: datetime
    window_end: datetime
    bundle: EvidenceRef
    chunks: int = Field(ge=0)
