"""Opening the evidence store the configuration names: a local directory or an S3 bucket.

Here, not in ``pausegate.config``: the stores read the configuration, so the configuration must
not build them (it would import the stores that import it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pausegate.config import EvidenceSettings
from pausegate.errors import EvidenceError
from pausegate.evidence.store import LocalEvidenceStore, default_signing_key_path

if TYPE_CHECKING:
    from pausegate.evidence.s3_store import S3EvidenceStore


def open_evidence_store(settings: EvidenceSettings) -> LocalEvidenceStore | S3EvidenceStore:
    """The store ``settings`` configure, able to write (with the signing key, created if missing)."""
    if settings.store == "s3":
        return open_s3_store(settings)
    return LocalEvidenceStore(
        settings.directory,
        settings.signing_key,
        compression=settings.compression,
        compression_level=settings.compression_level,
        expected_fingerprint=settings.signing_key_fingerprint,
    )


def open_s3_store(settings: EvidenceSettings, *, read_only: bool = False) -> S3EvidenceStore:
    """The store ``settings`` (``store = "s3"``) configure; ``read_only``: without the signing key
    (a verifier's machine has none, and must not make one)."""
    # imported here: the S3 client's libraries take a while to load, and a local store needs none of them
    from pausegate.evidence.s3_store import S3EvidenceStore

    if settings.s3 is None:
        raise EvidenceError("evidence.store is 's3' but [evidence.s3] is not configured")
    return S3EvidenceStore(
        settings.s3,
        None if read_only else settings.signing_key or default_signing_key_path(settings.directory),
        compression=settings.compression,
        compression_level=settings.compression_level,
        expected_fingerprint=settings.signing_key_fingerprint,
    )
