"""Sealed bundles in a local directory: staging, publishing by rename, and the chain on disk.

A bundle is built in a hidden staging directory and renamed into place only once its
manifest and signature are on disk, so a crash never leaves a half-sealed bundle under
its final name; a retry removes the staging directory and starts over. Appends to a chain
are serialised by ``.chain.lock`` in its directory; where the next bundle links is decided by
``pausegate.evidence.chain`` from what the directory holds (``list_chain``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import (
    CHAIN_HEAD,
    CHAIN_LOCK,
    CHUNKS,
    MANIFEST,
    SIGNATURE,
    BundleManifest,
    Encoding,
    ManifestEntry,
    chunk_name,
    decode_chunk,
    head_bytes,
    parse_manifest,
    signature_bytes,
)
from pausegate.evidence.chain import ChainListing, ChainTip, ListedBundle, build_manifest, chain_tip, parent_key
from pausegate.evidence.chunker import syncer
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DIR_MODE,
    canonical_json,
    directory_lock,
    fsync_dir,
    replace_file,
    sha256_hex,
    write_unsynced,
)
from pausegate.evidence.local_squats import bundle_is_own

log = structlog.get_logger(__name__)


def chain_lock(pause_dir: Path) -> AbstractContextManager[None]:
    """Serialises appends to a pause's chain of bundles."""
    return directory_lock(pause_dir, CHAIN_LOCK)


def list_chain(pause_dir: Path, chain_key: str) -> ChainListing:
    """What the directory of the chain ``chain_key`` holds, for ``chain.chain_tip``."""
    bundles: list[ListedBundle] = []
    for manifest_path in pause_dir.glob(f"*{BUNDLE_SUFFIX}/{MANIFEST}"):
        bundle = manifest_path.parent
        bundles.append(
            ListedBundle(
                name=bundle.name.removesuffix(BUNDLE_SUFFIX),
                manifest=_read(manifest_path),
                signature=_read(bundle / SIGNATURE),
                where=str(manifest_path),
            )
        )
    head_path = pause_dir / CHAIN_HEAD
    try:
        head: bytes | None = head_path.read_bytes()
    except FileNotFoundError:
        head = None
    except OSError:
        log.warning("evidence_chain_head_unreadable", path=str(head_path))
        head = None
    return ChainListing(chain_key=chain_key, bundles=bundles, head=head)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def directory_tip(pause_dir: Path, chain_key: str, signing_key: Ed25519PrivateKey) -> ChainTip | None:
    """The latest bundle of the chain in ``pause_dir`` (``chain.chain_tip`` over ``list_chain``)."""
    return chain_tip(list_chain(pause_dir, chain_key), signing_key.public_key())


def _catch_up_head(pause_dir: Path, signing_key: Ed25519PrivateKey, chain_key: str) -> None:
    current = directory_tip(pause_dir, chain_key, signing_key)
    if current is not None:
        publish_head(pause_dir, signing_key, current)


def catch_up_head(final: Path, key: str, signing_key: Ed25519PrivateKey) -> None:
    """On a retry that finds its bundle already sealed: a crash of the earlier attempt between its
    rename and its head update must not leave the head naming an older bundle for good."""
    with chain_lock(final.parent):
        _catch_up_head(final.parent, signing_key, parent_key(key))


def publish_head(pause_dir: Path, signing_key: Ed25519PrivateKey, tip: ChainTip) -> None:
    """Make the chain's head file name ``tip``, signed (left alone if it already does)."""
    data = head_bytes(signing_key, tip.key, tip.manifest_sha256, tip.chain_index)
    head_path = pause_dir / CHAIN_HEAD
    try:
        if head_path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    replace_file(head_path, data)


def bundle_ref_parts(final: Path) -> tuple[str, int, int, int] | None:
    """(manifest digest, records, size, chunks) of a completely sealed bundle, None if there is
    none. A bundle directory without a manifest can only be debris (bundles appear by rename
    once complete) and is removed; a manifest without its signature is damage, not a crash,
    and is reported rather than overwritten."""
    if not final.exists():
        return None
    manifest_path = final / MANIFEST
    if not manifest_path.exists():
        log.warning("evidence_incomplete_bundle_removed", path=str(final))
        shutil.rmtree(final)
        return None
    if not (final / SIGNATURE).exists():
        raise EvidenceError(f"bundle {final} has a manifest but no signature; refusing to reseal over it")
    data = manifest_path.read_bytes()
    manifest = parse_manifest(data)
    return sha256_hex(data), manifest.records, manifest.size_bytes, manifest.chunk_count


def finalize(
    *,
    key: str,
    pause: str,
    staging: Path,
    final: Path,
    raw_entries: list[ManifestEntry],
    signing_key: Ed25519PrivateKey,
    encoding: Encoding,
) -> tuple[str, int, int, int]:
    """Chain, sign and publish a staged bundle; returns (manifest digest, records, size, chunks)."""
    pause_dir = final.parent
    chain_key = parent_key(key)
    with chain_lock(pause_dir):
        existing = bundle_ref_parts(final)
        if existing is not None:
            if not bundle_is_own(final, key, signing_key.public_key()):
                raise EvidenceError(f"bundle {key!r}: a manifest the store did not sign appeared while it sealed")
            # another attempt of the same activity finished first
            shutil.rmtree(staging, ignore_errors=True)
            _catch_up_head(pause_dir, signing_key, chain_key)
            return existing
        tip = directory_tip(pause_dir, chain_key, signing_key)
        manifest = build_manifest(
            key=key, pause=pause, tip=tip, raw_entries=raw_entries, signing_key=signing_key, encoding=encoding
        )
        data = canonical_json(manifest.model_dump(mode="json"))
        digest = sha256_hex(data)
        head = pause_dir / CHAIN_HEAD
        head_tmp = head.with_name(f".{head.name}.tmp-{uuid.uuid4().hex}")
        try:
            # Each fsync waits on the device; those that do not depend on one another are issued
            # at once (the chunks are durable already): the manifest, its signature, the staging
            # directories' entries, and the new head under a temporary name. Only then does the
            # bundle appear under its name, and only once that is durable does the head name it.
            _all_durable(
                [
                    (write_unsynced, staging / MANIFEST, data),
                    (write_unsynced, staging / SIGNATURE, signature_bytes(signing_key, data)),
                    (write_unsynced, head_tmp, head_bytes(signing_key, key, digest, manifest.chain_index)),
                ],
                [staging / CHUNKS, staging],
            )
            os.rename(staging, final)
            fsync_dir(pause_dir)
            os.replace(head_tmp, head)
        finally:
            head_tmp.unlink(missing_ok=True)
        fsync_dir(pause_dir)
    log.info(
        "evidence_bundle_sealed",
        key=key,
        manifest_sha256=digest,
        records=manifest.records,
        chunks=manifest.chunk_count,
        chain_index=manifest.chain_index,
    )
    return digest, manifest.records, manifest.size_bytes, manifest.chunk_count


def _all_durable(files: list[tuple[Callable[[Path, bytes], int], Path, bytes]], directories: list[Path]) -> None:
    """Write ``files`` (each new) and fsync them and ``directories``, the fsyncs all at once on the
    store's fsync threads; returns once every one is durable, raises the first failure."""
    fds: list[int] = []
    try:
        for write, path, data in files:
            fds.append(write(path, data))
        for directory in directories:
            fds.append(os.open(directory, os.O_RDONLY))
        # the calling thread takes one itself: a hand-off less to wait for on a busy machine
        syncs = [syncer().submit(os.fsync, fd) for fd in fds[1:]]
        try:
            os.fsync(fds[0])
        finally:
            for sync in syncs:
                sync.exception()  # wait for all before the descriptors close
        for sync in syncs:
            sync.result()
    finally:
        for fd in fds:
            os.close(fd)


def sealed_or_staging(final: Path) -> tuple[tuple[str, int, int, int] | None, Path | None]:
    """``bundle_ref_parts`` of ``final`` if it is sealed, else a new staging directory for it (one
    trip to a thread for both)."""
    existing = bundle_ref_parts(final)
    return (existing, None) if existing is not None else (None, new_staging(final))


def new_staging(final: Path) -> Path:
    """A fresh staging directory for ``final``, after removing debris of crashed attempts."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        log.warning("evidence_stale_staging_removed", path=str(stale))
        shutil.rmtree(stale, ignore_errors=True)
    staging = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir(mode=DIR_MODE)
    (staging / CHUNKS).mkdir(mode=DIR_MODE)
    os.chmod(staging, DIR_MODE)
    os.chmod(staging / CHUNKS, DIR_MODE)
    return staging


def bundle_lines(bundle: Path, manifest: BundleManifest) -> Iterator[bytes]:
    """The record lines of ``bundle`` in sealed order, each chunk checked against ``manifest``
    as it is read, so that bytes changed since sealing or verifying are never handed out."""
    for entry in manifest.entries:
        chunk = bundle / CHUNKS / chunk_name(entry.sha256, manifest.encoding)
        stored = chunk.read_bytes()
        if sha256_hex(stored) != entry.sha256:
            raise EvidenceError(
                f"chunk {entry.index} ({chunk}) no longer matches its digest: it changed after it was verified"
                " or sealed"
            )
        try:
            data = decode_chunk(stored, manifest.encoding, entry.size_bytes)
        except EvidenceError as exc:
            raise EvidenceError(f"chunk {entry.index} ({chunk}): {exc}") from exc
        yield from data.splitlines(keepends=True)
