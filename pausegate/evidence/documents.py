"""Writing a document once, whatever the store: the rules here, the bytes in the medium.

A document is stored as canonical JSON with a signature beside it over its key and its bytes
(``bundle.document_signature_bytes``). Writing the same content again returns the same ref;
different content under a key that holds a document or a bundle is refused. The signature is
written first, so that a crash between the two writes leaves only a signature without a
document, which vouches for nothing and is replaced by the retry; a document without its
signature would be unreadable for good.

A name that holds something the store did not write is not refused: the document goes under a
fresh name and the reference lists what was planted (``squatting``). Each store gives a
``DocumentMedium``: a directory (files, a lock per directory) or a bucket (conditional creates,
versions); it stores, fetches, and says what lies at a key's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import document_signature_bytes
from pausegate.evidence.files import canonical_document, sha256_hex
from pausegate.evidence.squatting import Squat, place
from pausegate.models.evidence import URI_SCHEME, EvidenceRef

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoredDocument:
    """A document's bytes as the store created them, and the version that holds them (in a bucket)."""

    data: bytes
    version_id: str | None = None


class DocumentMedium(Protocol):
    """Where a store keeps its documents and their signatures."""

    def squat(self, key: str, data: bytes | None) -> Squat | None:
        """What lies at ``key``'s names that the store did not write (None: nothing, or the store's own
        document; ``data``, if given, is what is about to be written, and a document of exactly those
        bytes without a signature is the store's, stored before signatures were written first).
        ``EvidenceError`` if ``key`` holds a bundle the store sealed."""
        ...

    def writing(self, key: str) -> AbstractContextManager[None]:
        """Held while ``key`` is written: excludes other writers where the medium itself does not."""
        ...

    def stored(self, key: str) -> StoredDocument | None:
        """The document under ``key`` as the store created it; None if there is none."""
        ...

    def put_signature(self, key: str, signature: bytes) -> None:
        """Write the signature of a document about to be created, over any orphan a crashed
        attempt left (replacing it, or adding a version beside it)."""
        ...

    def keep_signature(self, key: str, signature: bytes) -> None:
        """Beside a document already stored: add ``signature`` if it has none."""
        ...

    def create(self, key: str, data: bytes) -> StoredDocument | None:
        """Create the document unless the name exists (then None, the existing one untouched)."""
        ...


def document_data(document: Mapping[str, Any] | list[Any]) -> tuple[bytes, int]:
    """A document's canonical JSON, and how many records it counts as (a list's items, else 1)."""
    return canonical_document(document), len(document) if isinstance(document, list) else 1


def canonical_object(key: str, data: bytes) -> bytes:
    """``data``, which its writer already encoded as canonical JSON, if it is a JSON object."""
    if not data.startswith(b"{"):
        raise EvidenceError(f"evidence key {key!r}: a canonical document must be a JSON object")
    return data


def write_document(
    medium: DocumentMedium, signing_key: Ed25519PrivateKey, key: str, data: bytes, records: int
) -> EvidenceRef:
    """Store ``data`` under ``key`` once, signed; the ref of what is stored (under a fresh name, listing
    what was planted, if the key's names hold something the store did not write)."""
    placement = place(key, medium.squat(key, data), signing_key, lambda fresh: medium.squat(fresh, data))
    try:
        stored = _write(medium, signing_key, placement.key, data)
    except EvidenceError:
        # a name planted between the look and the write (someone watching for the pause's directory)
        # is a squat like any other: looked at again, it moves the write
        again = place(key, medium.squat(key, data), signing_key, lambda fresh: medium.squat(fresh, data))
        if again.key == placement.key:
            raise
        placement = again
        stored = _write(medium, signing_key, placement.key, data)
    return EvidenceRef(
        uri=f"{URI_SCHEME}{placement.key}", sha256=sha256_hex(data), records=records, size_bytes=len(data),
        version_id=stored.version_id, plants=placement.planted,
    )


def _write(medium: DocumentMedium, signing_key: Ed25519PrivateKey, key: str, data: bytes) -> StoredDocument:
    # Ed25519 signs deterministically, so a retry produces the same bytes
    signature = document_signature_bytes(signing_key, key, data)
    with medium.writing(key):
        existing = medium.stored(key)
        if existing is not None:
            stored = _same(key, existing, data)
            # a document stored before signatures were written first may lack one
            medium.keep_signature(key, signature)
        else:
            medium.put_signature(key, signature)
            # None: created meanwhile, by a concurrent attempt
            stored = medium.create(key, data) or _same(key, medium.stored(key), data)
    version = {"version_id": stored.version_id} if stored.version_id is not None else {}
    log.info("evidence_document_stored", key=key, sha256=sha256_hex(data), size_bytes=len(data), **version)
    return stored


def _same(key: str, stored: StoredDocument | None, data: bytes) -> StoredDocument:
    """``stored``, if it holds ``data``; else ``EvidenceError``."""
    if stored is None:
        raise EvidenceError(f"evidence key {key!r}: the document was neither created nor found")
    if stored.data != data:
        raise EvidenceError(f"evidence key {key!r} already holds different content")
    log.debug("evidence_document_exists", key=key)
    return stored
