"""Which version of an object to read: a versioned, object-locked bucket keeps every version written.

Documents and manifests are read at the version their ref recorded, else at their first version,
which is what the conditional create wrote (a version someone added later with access to the bucket
is newer and is not read). Signatures, chunks and chain heads prove themselves (a signature
verifies, a chunk's digest is its name, a head is signed), so of those the version that proves
itself is read: a signature orphaned by a crashed attempt, or junk put beside it, cannot make
genuine evidence unreadable. Signatures and chain heads are the only names written more than
once, each time as a new, locked version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import (
    document_signature_problem,
    head_signature_problem,
    manifest_signature_problem,
    parse_head,
    parse_signature,
)
from pausegate.evidence.files import sha256_hex
from pausegate.evidence.s3_objects import Bucket

log = structlog.get_logger(__name__)

JSON = "application/json"
# Versions of one name looked through for one that proves itself: the store writes a few at most
# (a signature per attempt, a head per bundle); thousands were put there to make readers slow.
MAX_VERSIONS_READ = 64

SignatureCheck = Callable[[bytes], str | None]
"""What a signature file must pass: None if it vouches, else why not."""


async def first_or_recorded(bucket: Bucket, name: str, version_id: str | None) -> bytes | None:
    """``version_id`` of ``name`` if given (what a ref recorded), else its first version."""
    if version_id is not None:
        return await bucket.get(name, version_id)
    found = await bucket.oldest(name)
    return None if found is None else found[0]


async def put_signature(bucket: Bucket, name: str, signature: bytes) -> None:
    """Create the signature; if the name exists, add it as a new version unless some version
    already is these bytes (a retry: Ed25519 signs deterministically)."""
    if await bucket.put_new(name, signature, JSON) is not None:
        return
    if await bucket.get(name) == signature:
        return
    for version in (await bucket.versions(name))[:MAX_VERSIONS_READ]:
        if await bucket.get(name, version) == signature:
            return
    log.warning("evidence_signature_version_added", object=name)
    await bucket.put_version(name, signature, JSON)


async def vouching_signature(bucket: Bucket, name: str, problem_of: SignatureCheck) -> tuple[bytes | None, str | None]:
    """The version of the signature ``name`` that vouches (``problem_of`` says None), newest
    first; else (the newest, why it does not vouch)."""
    newest = await bucket.get(name)
    why = problem_of(newest) if newest is not None else "signature is missing"
    if why is None:
        return newest, None
    for version in (await bucket.versions(name))[:MAX_VERSIONS_READ]:
        data = await bucket.get(name, version)
        if data is not None and problem_of(data) is None:
            return data, None
    return newest, why


def document_check(public_key: Ed25519PublicKey, key: str, data: bytes) -> SignatureCheck:
    """What a signature of the document ``data`` under ``key`` must pass (None: it vouches)."""

    def problem(sig: bytes) -> str | None:
        try:
            sig_file, signature = parse_signature(sig)
        except EvidenceError as exc:
            return str(exc)
        if sig_file.key is None:
            return "signature does not name its key"
        return document_signature_problem(public_key, sig_file, signature, key, data)

    return problem


def manifest_check(public_key: Ed25519PublicKey, data: bytes) -> SignatureCheck:
    """What a signature of the manifest ``data`` must pass (None: it vouches)."""
    return lambda sig: manifest_signature_problem(public_key, sig, data)


async def chunk_bytes(bucket: Bucket, name: str) -> bytes | None:
    """The version of chunk ``name`` whose digest its name gives, newest first; None if none."""
    digest = name.rsplit("/", 1)[-1].split(".", 1)[0]
    newest = await bucket.get(name)
    if newest is not None and sha256_hex(newest) == digest:
        return newest
    for version in (await bucket.versions(name))[:MAX_VERSIONS_READ]:
        data = await bucket.get(name, version)
        if data is not None and sha256_hex(data) == digest:
            return data
    return None


async def signed_head(
    bucket: Bucket,
    name: str,
    versions: list[str],
    public_key: Ed25519PublicKey | None,
    recorded: Mapping[str, str] | None = None,
) -> bytes | None:
    """The version of a chain head to copy: of the versions ``public_key`` signed, the one naming
    the latest bundle the pause recorded (``recorded``: digests by evidence key), else the one
    naming the latest bundle. Someone with access to the bucket can put an older signed head again
    as the newest version; copying that one would fail the bundles sealed after it. Junk put on top
    must not hide a head either. With no signed version, the newest: verification then says what is
    wrong with it. Without a key to choose with (the bucket's is not the pinned one), the newest."""
    if public_key is not None:
        named: tuple[int, bytes] | None = None
        latest: tuple[int, bytes] | None = None
        for version in versions[:MAX_VERSIONS_READ]:
            data = await bucket.get(name, version)
            if data is None:
                continue
            try:
                head = parse_head(data)
            except EvidenceError:
                continue
            if head_signature_problem(public_key, head) is not None:
                continue
            # versions come newest first: on a tie the newer one stays
            if latest is None or head.chain_index > latest[0]:
                latest = (head.chain_index, data)
            if (recorded or {}).get(head.key) == head.manifest_sha256 and (
                named is None or head.chain_index > named[0]
            ):
                named = (head.chain_index, data)
        chosen = named or latest
        if chosen is not None:
            return chosen[1]
    return await bucket.get(name, versions[0])
