"""Evidence laid out as a directory, wherever it is stored: offline verification and audit read
directories, so the evidence in a bucket is downloaded first, each item at the version the pause
recorded (or, unrecorded, the one the store created), each chain head at the version naming the
latest bundle recorded."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pausegate.config import EvidenceSettings
from pausegate.evidence.anchor import recorded_references
from pausegate.models.state import PauseState


@dataclass(frozen=True)
class EvidenceAtHand:
    """A directory holding the evidence as the local store lays it out."""

    root: Path
    location: str = ""  # where the evidence lies, for people: the directory, or the bucket's s3:// URL
    copied: bool = False
    notes: list[str] = field(default_factory=list)


def recorded_versions(state: PauseState | None) -> dict[str, str]:
    """The object version of every item ``state`` recorded with one, by evidence key."""
    if state is None:
        return {}
    return {ref.key: ref.version_id for _, ref in recorded_references(state) if ref.version_id}


def recorded_digests(state: PauseState | None) -> dict[str, str]:
    """The digest of every item ``state`` recorded (a bundle's is its manifest's), by evidence key."""
    if state is None:
        return {}
    return {ref.key: ref.sha256 for _, ref in recorded_references(state)}


@contextmanager
def evidence_at_hand(
    settings: EvidenceSettings, key: str, state: PauseState | None = None
) -> Iterator[EvidenceAtHand]:
    """The evidence under ``key``: the configured directory, or a temporary copy of the bucket's
    (removed afterwards) with the versions ``state`` recorded. Opens no store for writing: a
    verifier's machine has no signing key, and must not make one."""
    from pausegate.evidence.open_store import open_s3_store

    if settings.store == "local":
        root = settings.directory.absolute()
        yield EvidenceAtHand(root=root, location=str(root))
        return
    store = open_s3_store(settings, read_only=True)
    try:
        with tempfile.TemporaryDirectory(prefix="pausegate-evidence-") as tmp:
            copy = store.download(
                key, Path(tmp), recorded=recorded_versions(state), digests=recorded_digests(state)
            )
            yield EvidenceAtHand(root=copy.directory, location=store.location, copied=True, notes=copy.notes)
    finally:
        store.close()
