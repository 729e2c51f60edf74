"""The chain of bundles: each bundle names the one sealed before it, and a signed head names the newest.

One rule finds where the next bundle links (``chain_tip``), whatever the medium: each store lists
what lies where a chain lives (``ChainListing``: the bundles with their manifest and signature
bytes, and the head's bytes), and the rule decides from that listing alone. It reads nothing
itself, so the local directory and the S3 bucket cannot come to differ in what they trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pausegate.errors import EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.bundle import (
    GENESIS,
    BundleManifest,
    Encoding,
    ManifestEntry,
    PreviousBundle,
    chain_entries,
    head_signature_problem,
    manifest_signature_problem,
    parse_head,
    parse_manifest,
)
from pausegate.evidence.files import BUNDLE_SUFFIX, sha256_hex

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChainTip:
    key: str
    manifest_sha256: str
    chain_index: int


def parent_key(key: str) -> str:
    """The key of the directory ``key`` lies in ("" at the store's root)."""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def child_key(directory_key: str, name: str) -> str:
    return f"{directory_key}/{name}" if directory_key else name


@dataclass(frozen=True)
class ListedBundle:
    """A bundle where a chain lives, as its medium found it."""

    name: str
    """The last segment of the bundle's key (its directory or object name without ``.bundle``)."""
    manifest: bytes | None
    """The manifest's bytes (in a bucket, the version the store created); None: unreadable."""
    signature: bytes | None
    """The signature file's bytes (in a bucket, the version that vouches, if one does); None: none."""
    where: str
    """The bundle's path or object name, for logs."""


@dataclass(frozen=True)
class ChainListing:
    """What lies where a chain lives: its bundles and the bytes of its head (None: no head)."""

    chain_key: str
    bundles: Sequence[ListedBundle]
    head: bytes | None


def chain_tip(listing: ChainListing, public_key: Ed25519PublicKey) -> ChainTip | None:
    """The chain's latest bundle: where the next bundle links.

    Only bundles signed with ``public_key`` and naming the key their place gives are followed: a
    bundle planted there (a copy from another pause, a forgery) must not become the link the next
    bundle signs. The head is a hint, taken only if ``public_key`` signed it (an unsigned, forged or
    unreadable head is ignored, and the bundles are followed from the start); from there the
    bundles are followed to the end, since a crash after a bundle appeared but before the head
    moved must not fork the chain. Where two bundles name the same predecessor, the first by name
    is followed."""
    successors: dict[str, ChainTip] = {}
    for bundle in sorted(listing.bundles, key=lambda b: b.name + BUNDLE_SUFFIX):
        try:
            if bundle.manifest is None:
                raise EvidenceError("manifest unreadable")
            manifest = parse_manifest(bundle.manifest)
        except EvidenceError:
            log.warning("evidence_chain_unreadable_manifest", where=bundle.where)
            continue
        expected = child_key(listing.chain_key, bundle.name)
        if manifest.key != expected or manifest_signature_problem(public_key, bundle.signature, bundle.manifest):
            log.warning("evidence_chain_foreign_bundle_ignored", where=bundle.where)
            continue
        prev = manifest.previous.manifest_sha256 if manifest.previous else GENESIS
        successors.setdefault(prev, ChainTip(manifest.key, sha256_hex(bundle.manifest), manifest.chain_index))
    tip = _signed_head(listing, public_key)
    seen: set[str] = set()
    cursor = tip.manifest_sha256 if tip else GENESIS
    while cursor in successors and cursor not in seen:
        seen.add(cursor)
        tip = successors[cursor]
        cursor = tip.manifest_sha256
    return tip


def _signed_head(listing: ChainListing, public_key: Ed25519PublicKey) -> ChainTip | None:
    """The bundle the chain's head names, if ``public_key`` signed the head."""
    if listing.head is None:
        return None
    try:
        head = parse_head(listing.head)
    except EvidenceError:
        log.warning("evidence_chain_head_unreadable", chain=listing.chain_key)
        return None
    if (why := head_signature_problem(public_key, head)) is not None:
        log.warning("evidence_chain_head_ignored", chain=listing.chain_key, problem=why)
        return None
    return ChainTip(head.key, head.manifest_sha256, head.chain_index)


def build_manifest(
    *,
    key: str,
    pause: str,
    tip: ChainTip | None,
    raw_entries: list[ManifestEntry],
    signing_key: Ed25519PrivateKey,
    encoding: Encoding,
) -> BundleManifest:
    """The manifest of a bundle of ``raw_entries`` (in stream order), chained after ``tip``."""
    start = tip.manifest_sha256 if tip else GENESIS
    entries, head = chain_entries(raw_entries, start)
    times = [t for e in entries for t in (e.first_at, e.last_at) if t is not None]
    return BundleManifest(
        key=key,
        pause=pause,
        sealed_at=datetime.now(UTC).isoformat(),
        chain_index=tip.chain_index + 1 if tip else 0,
        previous=PreviousBundle(key=tip.key, manifest_sha256=tip.manifest_sha256) if tip else None,
        records=sum(e.records for e in entries),
        size_bytes=sum(e.size_bytes for e in entries),
        chunk_count=len(entries),
        first_at=entries[0].first_at if entries and times else None,
        last_at=entries[-1].last_at if entries and times else None,
        head=head,
        signing_key_sha256=keymod.fingerprint(signing_key.public_key()),
        encoding=encoding,
        entries=entries,
    )
