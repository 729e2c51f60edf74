"""What the rest of pausegate needs of an evidence store, whichever is configured.

Two stores implement it, side by side in this package: ``store.LocalEvidenceStore`` (a local
directory) and ``s3_store.S3EvidenceStore`` (an S3 bucket with Object Lock);
``open_store.open_evidence_store`` opens the one the configuration names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

from pausegate.models.evidence import EvidenceRef


class EvidenceStore(Protocol):
    """Write-once storage for evidence; refs (uri + digest) are all that leave it."""

    def put_json(self, key: str, document: Mapping[str, Any] | list[Any]) -> EvidenceRef:
        """Store a JSON document under ``key`` once; the same content again returns the same ref,
        different content under an existing key raises ``EvidenceError``."""
        ...

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object already encoded as canonical JSON, once (as ``put_json``)."""
        ...

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what is stored under ``key``, if anything."""
        ...

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        """The JSON document stored under ``key``, signed for that key; with ``expected_sha256`` (the
        digest the pause recorded) exactly that one, else ``EvidenceError`` naming the key. ``version_id``
        (``EvidenceRef.version_id``) is the version to read where the store keeps versions."""
        ...

    def iter_bundle(
        self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of a sealed bundle, in order, each chunk checked against its digest."""
        ...

    @property
    def signing_key_sha256(self) -> str:
        """Fingerprint of the key the store signs with (the final report names it)."""
        ...

    async def seal(self, key: str, records: AsyncIterator[Mapping[str, Any]]) -> tuple[EvidenceRef, int]:
        """Stream records into a sealed bundle under ``key``; returns (ref to the manifest, chunk count).
        Sealing the same key again returns the existing bundle's ref."""
        ...


async def read_recorded(store: EvidenceStore, ref: EvidenceRef) -> Any:
    """The document (or bundle manifest) ``ref`` names, exactly the one recorded: its digest, and its
    version where the store keeps versions; read off the event loop, whichever store is configured."""
    return await asyncio.to_thread(store.read_json, ref.key, ref.sha256, version_id=ref.version_id)
