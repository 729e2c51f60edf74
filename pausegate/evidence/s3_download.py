"""Evidence copied out of a bucket into a directory laid out as the local store lays it out, so that
offline verification and audit read it as they read an evidence directory.

Which version of each object the copy holds is chosen as the store reads them
(``pausegate.evidence.s3_versions``); what the bucket holds beyond what the store wrote (versions
added later, delete markers, names the store never writes) is noted, not hidden.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import CHAIN_HEAD, CHUNKS, MANIFEST, SIGNATURE
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DIR_MODE,
    DOCUMENT_SUFFIX,
    FILE_MODE,
    SIGNATURE_SUFFIX,
    validate_key,
)
from pausegate.evidence.s3_objects import MAX_CONCURRENCY, Bucket
from pausegate.evidence.s3_versions import (
    chunk_bytes,
    document_check,
    manifest_check,
    signed_head,
    vouching_signature,
)
from pausegate.evidence.signing_keys import PUBLIC_KEY_FILENAME

MANIFEST_SIGNATURE_STEM = SIGNATURE.removesuffix(SIGNATURE_SUFFIX)  # "manifest"


@dataclass(frozen=True)
class Download:
    """What ``S3EvidenceStore.download`` wrote, and what it saw in the bucket that people should know."""

    directory: Path
    objects: int
    notes: list[str]


@dataclass(frozen=True)
class BucketCopy:
    """Copies evidence out of ``bucket`` (under ``prefix``): the versions chosen with ``public_key``
    (None: no key to choose with, as the bucket's is not the pinned one; verification says so) and,
    for documents and manifests, the versions ``recorded`` names by evidence key; for chain heads,
    the one naming the latest bundle whose digest ``digests`` records by evidence key."""

    bucket: Bucket
    prefix: str
    public_key: Ed25519PublicKey | None
    recorded: Mapping[str, str]
    digests: Mapping[str, str] = field(default_factory=dict)

    async def download(self, base: str, directory: Path) -> Download:
        """Copy every object under the name ``base`` (``<prefix><key>``) into ``directory``."""
        listing = await self.bucket.listing(base)
        names = [n for n in listing.versions if _belongs(n[len(base) :])]
        notes: list[str] = []
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True, mode=DIR_MODE)
        pem = await self.bucket.oldest(self.prefix + PUBLIC_KEY_FILENAME)
        if pem is not None:
            _write(directory / PUBLIC_KEY_FILENAME, pem[0])
        for name in names:
            if name in listing.deleted:
                notes.append(f"{name[len(self.prefix):]}: its newest version is a delete marker "
                             "(the locked versions remain, and were read)")
        limit = asyncio.Semaphore(MAX_CONCURRENCY)

        async def fetch(name: str, subjects: Mapping[str, bytes | None]) -> tuple[str, bytes | None]:
            async with limit:
                data, note = await self._version(name, listing.versions[name], subjects)
            if note:
                notes.append(f"{name[len(self.prefix):]}: {note}")
            return name, data

        # signatures last: which version to copy depends on what they sign
        signatures = [n for n in names if n.endswith(SIGNATURE_SUFFIX)]
        chosen = dict(await asyncio.gather(*(fetch(n, {}) for n in names if n not in signatures)))
        signed = dict(await asyncio.gather(*(fetch(n, chosen) for n in signatures)))
        for name, data in sorted({**chosen, **signed}.items()):
            rel = name[len(self.prefix) :]
            if data is not None and not _write_under(directory, rel, data):
                notes.append(f"{rel!r}: not a name the store writes; not copied")
        return Download(directory=directory, objects=len(names), notes=sorted(notes))

    async def _version(
        self, name: str, versions: list[str], subjects: Mapping[str, bytes | None]
    ) -> tuple[bytes | None, str | None]:
        """The version of ``name`` a copy holds (see ``S3EvidenceStore.download``), and what to say
        about the others."""
        rel = name[len(self.prefix) :]
        if name.endswith(SIGNATURE_SUFFIX):
            return await self._signature(name, versions, subjects), None
        if name.endswith(f"/{CHAIN_HEAD}"):
            return await signed_head(self.bucket, name, versions, self.public_key, self.digests), None
        note: str | None = None
        if f"{BUNDLE_SUFFIX}/{CHUNKS}/" in rel:
            data = await chunk_bytes(self.bucket, name)
            if data is None:
                return await self.bucket.get(name, versions[0]), None
            if len(versions) > 1:
                note = f"{len(versions)} versions in the bucket; the one matching its digest was read"
            return data, note
        if rel.endswith(DOCUMENT_SUFFIX):
            evidence_key = _key_of(rel)
            version = self.recorded.get(evidence_key) if evidence_key else None
            if len(versions) > 1:
                which = "the recorded one" if version else "the first (what the store created)"
                note = f"{len(versions)} versions in the bucket (written again after the store created it); {which}"
                note += " was read"
            return await self.bucket.get(name, version or versions[-1]), note
        return await self.bucket.get(name, versions[0]), None

    async def _signature(self, name: str, versions: list[str], subjects: Mapping[str, bytes | None]) -> bytes | None:
        """The version of a signature that vouches for the version of its subject the copy holds,
        else the newest."""
        target = name.removesuffix(SIGNATURE_SUFFIX)
        if target.endswith(f"{BUNDLE_SUFFIX}/{MANIFEST_SIGNATURE_STEM}"):
            target = target.removesuffix(MANIFEST_SIGNATURE_STEM) + MANIFEST
        subject = subjects.get(target)
        evidence_key = _key_of(target[len(self.prefix) :])
        data = None
        if subject is not None and self.public_key is not None:
            try:
                if target.endswith(f"/{MANIFEST}"):
                    data, _ = await vouching_signature(self.bucket, name, manifest_check(self.public_key, subject))
                elif evidence_key is not None:
                    check = document_check(self.public_key, evidence_key, subject)
                    data, _ = await vouching_signature(self.bucket, name, check)
            except EvidenceError:
                data = None  # unreadable (larger than any evidence object): verification says so
        return data if data is not None else await self.bucket.get(name, versions[0])


def _belongs(rest: str) -> bool:
    """Whether an object named ``<key><rest>`` lies under ``key`` (not under a sibling key that
    merely starts with the same letters)."""
    return rest.startswith(("/", f"{BUNDLE_SUFFIX}/")) or rest in (DOCUMENT_SUFFIX, DOCUMENT_SUFFIX + SIGNATURE_SUFFIX)


def _key_of(rel: str) -> str | None:
    """The evidence key of a document's or manifest's object name (relative to the prefix)."""
    if rel.endswith(f"{BUNDLE_SUFFIX}/{MANIFEST}"):
        key = rel.removesuffix(f"{BUNDLE_SUFFIX}/{MANIFEST}")
    else:
        key = rel.removesuffix(DOCUMENT_SUFFIX)
    try:
        validate_key(key)
    except EvidenceError:
        return None
    return key


def _write_under(directory: Path, rel: str, data: bytes) -> bool:
    """Write ``data`` at ``directory/rel`` if ``rel`` is a plain relative path (object names are
    written by whoever has access to the bucket: none may lead out of the copy)."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\x00" in p or "\\" in p for p in parts) or len(parts) > 64:
        return False
    path = directory.joinpath(*parts)
    for parent in reversed(path.parents):
        if parent.is_relative_to(directory) and not parent.exists():
            parent.mkdir(mode=DIR_MODE)
    if path.exists() or not path.resolve().is_relative_to(directory.resolve()):
        return False
    _write(path, data)
    return True


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
