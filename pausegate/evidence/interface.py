"""What the rest of pausegate needs of an evidence store, whichever is configured.

Two stores implement it, side by side in this package: ``store.LocalEvidenceStore`` (a local
directory) and ``s3_store.S3EvidenceStore`` (an S3 bucket with Object Lock);
``open_store.open_evidence_store`` opens the one the configuration names.

Keys are the layout's (``layout``). A key whose names hold something the store did not write is
written under a fresh name that the returned ref names, with what was planted listed on it
(``squatting``); every method below takes the layout's key and finds the store's own object there.
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
        different content under a key the store wrote raises ``EvidenceError``; a name someone else
        wrote first moves the document to a fresh name (the ref's uri), the plant listed on the ref."""
        ...

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object already encoded as canonical JSON, once (as ``put_json``)."""
        ...

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what the store wrote for ``key`` (under its fresh name, if a plant moved it), if anything."""
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
        Sealing the same key again returns the existing bundle's ref; a name someone else wrote first
        moves the bundle to a fresh name, as ``put_json``."""
        ...


async def read_recorded(store: EvidenceStore, ref: EvidenceRef) -> Any:
    """The document (or bundle manifest) ``ref`` names, exactly the one recorded: its digest, and its
    version where the store keeps versions; read off the event loop, whichever store is configured."""
    return await asyncio.to_thread(store.read_json, ref.key, ref.sha256, version_id=ref.version_id)
