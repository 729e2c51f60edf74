"""Sealing a stream of records into a bundle: content-addressed chunks, a hash-chained,
signed manifest, and a chain of bundles per pause.

Layout of one bundle (``<key>`` = ``<pause>/<name>``)::

    <root>/<pause>/<name>.bundle/
        manifest.json           canonical JSON (BundleManifest)
        manifest.sig            Ed25519 signature over manifest.json's bytes (SignatureFile)
        chunks/<sha256>.jsonl.zst   records, one canonical JSON object per line, zstd-compressed
                                    (<sha256> is the digest of the file's bytes; bundles
                                    sealed uncompressed have chunks/<sha256>.jsonl)
    <root>/<pause>/.chain-head.json   the pause's latest bundle, signed (ChainHead): sealing
                                      treats it as a hint and follows the bundles; verification
                                      requires it, so deleting the newest bundle is detected
    <root>/<pause>/.chain.lock        serialises appends to the pause's chain

Here ``<pause>`` is the directory a chain lives in (``<pause key>/audit/<source>``). Heads
written before heads were signed have no ``signature``; they still read, as hints.

A bundle is built in a hidden staging directory and renamed into place only once its
manifest and signature are on disk, so a crash never leaves a half-sealed bundle under
its final name; a retry removes the staging directory and starts over.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import shutil
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import structlog
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError

from pausegate.errors import EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DIR_MODE,
    canonical_json,
    canonical_line,
    directory_lock,
    fsync_dir,
    replace_file,
    sha256_hex,
    write_new,
    write_unsynced,
)
from pausegate.models.base import Model
from pausegate.models.evidence import SHA256_HEX

log = structlog.get_logger(__name__)

FORMAT: Literal["pausegate-evidence-bundle/1"] = "pausegate-evidence-bundle/1"
GENESIS = "0" * 64
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHUNKS = "chunks"
CHAIN_HEAD = ".chain-head.json"
CHAIN_LOCK = ".chain.lock"
# 8 MiB: each chunk costs a file, an fsync and hand-offs between threads; at 4 MiB sealing
# took about a tenth more CPU (bench/bench_seal.py --chunk-mb 4). Readers and verify hold
# one chunk at a time, sealing SEAL_THREADS + 2.
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
TIME_FIELD = "at"


class ManifestEntry(Model):
    """One chunk, chained to the entry before it (the first to the previous bundle's manifest)."""

    index: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(ge=0)
    records: int = Field(ge=0)
    first_at: str | None = None
    last_at: str | None = None
    prev: str = Field(pattern=SHA256_HEX)


class PreviousBundle(Model):
    """The bundle sealed just before this one for the same pause."""

    key: str
    manifest_sha256: str = Field(pattern=SHA256_HEX)


class BundleManifest(Model):
    """What a signature vouches for: every chunk by digest, in order, and the link to the past."""

    format: Literal["pausegate-evidence-bundle/1"] = FORMAT
    key: str
    pause: str
    sealed_at: str
    chain_index: int = Field(ge=0)
    previous: PreviousBundle | None
    records: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    chunk_count: int = Field(ge=0)
    first_at: str | None = None
    last_at: str | None = None
    head: str = Field(
        pattern=SHA256_HEX, description="Digest of the last entry (GENESIS chain start if none)."
    )
    signing_key_sha256: str = Field(pattern=SHA256_HEX)
    encoding: Literal["jsonl", "jsonl+zstd"] = Field(
        default="jsonl", description="How chunk files store their records; entries' sha256 is of the stored bytes."
    )
    entries: list[ManifestEntry]


class SignatureFile(Model):
    algorithm: Literal["ed25519"] = "ed25519"
    key_sha256: str = Field(pattern=SHA256_HEX)
    signature: str
    key: str | None = Field(
        default=None,
        description="The evidence key a document's signature binds it to: the signed message is "
        "document_message(key, bytes). Absent for manifests (they name their key inside) and for "
        "documents signed before signatures named their key (signed over the bytes alone).",
    )


class ChainHead(Model):
    """The newest bundle of a chain, signed so that it cannot be rewritten to an older bundle
    without the deployment's key (``signature`` is None in heads written before they were signed)."""

    key: str
    manifest_sha256: str = Field(pattern=SHA256_HEX)
    chain_index: int = Field(ge=0)
    signature: SignatureFile | None = None


# Domain prefixes keep one kind of signed message from ever being read as another: a document
# whose bytes happen to look like a head must not lend its signature to a forged head.
DOCUMENT_DOMAIN = b"pausegate-evidence-document/1\n"
HEAD_DOMAIN = b"pausegate-evidence-chain-head/1\n"


def entry_digest(entry: ManifestEntry) -> str:
    return sha256_hex(canonical_json(entry.model_dump(mode="json")))


def chain_entries(raw: list[ManifestEntry], start: str) -> tuple[list[ManifestEntry], str]:
    """Link entries: each ``prev`` is the digest of the entry before; returns (entries, head)."""
    out: list[ManifestEntry] = []
    prev = start
    for e in raw:
        linked = e.model_copy(update={"prev": prev})
        out.append(linked)
        prev = entry_digest(linked)
    return out, prev


def parse_manifest(data: bytes) -> BundleManifest:
    try:
        return BundleManifest.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise EvidenceError(f"manifest does not parse: {exc}") from exc


def parse_signature(data: bytes) -> tuple[SignatureFile, bytes]:
    try:
        sig = SignatureFile.model_validate(json.loads(data))
        return sig, base64.b64decode(sig.signature, validate=True)
    except (ValueError, ValidationError) as exc:
        raise EvidenceError(f"signature file does not parse: {exc}") from exc


def signature_json(sig: SignatureFile) -> bytes:
    """A signature file's bytes; fields that are None are left out, so manifest signatures keep
    the exact form they always had."""
    return canonical_json(sig.model_dump(mode="json", exclude_none=True))


def signature_bytes(key: Ed25519PrivateKey, data: bytes) -> bytes:
    sig = SignatureFile(
        key_sha256=keymod.fingerprint(key.public_key()), signature=base64.b64encode(key.sign(data)).decode()
    )
    return signature_json(sig)


def document_message(evidence_key: str, data: bytes) -> bytes:
    """What a document's signature covers: its key as well as its bytes, so that a genuine document
    copied under another key (another pause's scope) no longer verifies there. Keys hold no newline."""
    return DOCUMENT_DOMAIN + evidence_key.encode() + b"\n" + data


def document_signature_bytes(key: Ed25519PrivateKey, evidence_key: str, data: bytes) -> bytes:
    sig = SignatureFile(
        key_sha256=keymod.fingerprint(key.public_key()),
        signature=base64.b64encode(key.sign(document_message(evidence_key, data))).decode(),
        key=evidence_key,
    )
    return signature_json(sig)


def document_signature_problem(
    public_key: Ed25519PublicKey, sig: SignatureFile, signature: bytes, evidence_key: str, data: bytes
) -> str | None:
    """Why a document's signature does not vouch for ``data`` under ``evidence_key`` (None if it does)."""
    if sig.key is None:
        message = data
    elif sig.key != evidence_key:
        return f"signed for key {sig.key!r}, found at key {evidence_key!r} (copied from elsewhere)"
    else:
        message = document_message(evidence_key, data)
    if not keymod.verify_signature(public_key, signature, message):
        return (
            f"signature does not verify with public key {keymod.fingerprint(public_key)} "
            "(altered, replaced, or signed by another key)"
        )
    return None


def head_message(key: str, manifest_sha256: str, chain_index: int) -> bytes:
    return HEAD_DOMAIN + canonical_json({"key": key, "manifest_sha256": manifest_sha256, "chain_index": chain_index})


def head_bytes(signing_key: Ed25519PrivateKey, key: str, manifest_sha256: str, chain_index: int) -> bytes:
    signature = signing_key.sign(head_message(key, manifest_sha256, chain_index))
    head = ChainHead(
        key=key,
        manifest_sha256=manifest_sha256,
        chain_index=chain_index,
        signature=SignatureFile(
            key_sha256=keymod.fingerprint(signing_key.public_key()), signature=base64.b64encode(signature).decode()
        ),
    )
    return canonical_json(head.model_dump(mode="json", exclude_none=True))


def parse_head(data: bytes) -> ChainHead:
    try:
        return ChainHead.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise EvidenceError(f"chain head does not parse: {exc}") from exc


def head_signature_problem(public_key: Ed25519PublicKey, head: ChainHead) -> str | None:
    """Why ``head`` is not vouched for by ``public_key`` (None if it is)."""
    if head.signature is None:
        return "chain head is unsigned"
    try:
        signature = base64.b64decode(head.signature.signature, validate=True)
    except ValueError:
        return "chain head signature is not base64"
    if not keymod.verify_signature(
        public_key, signature, head_message(head.key, head.manifest_sha256, head.chain_index)
    ):
        return (
            f"chain head signature does not verify with public key {keymod.fingerprint(public_key)} "
            "(altered, replaced, or signed by another key)"
        )
    return None


def time_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------- chunking


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """Whole records as canonical JSON lines (each ending in a newline), handed to the sealer
    in one piece: per-record work belongs to whoever produces the records, not to sealing.

    ``first_at`` / ``last_at`` are the times of the first and last record that has one."""

    data: bytes
    records: int
    first_at: str | None = None
    last_at: str | None = None


def line_time(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return time_text(record.get(TIME_FIELD)) if isinstance(record, dict) else None


def _first_time(data: bytes, start: int, stop: int) -> str | None:
    """Time of the first timed line in ``data[start:stop]`` (whole lines)."""
    while start < stop:
        end = data.index(b"\n", start) + 1
        at = line_time(data[start:end])
        if at is not None:
            return at
        start = end
    return None


def _last_time(data: bytes, start: int, stop: int) -> str | None:
    """Time of the last timed line in ``data[start:stop]`` (whole lines)."""
    while stop > start:
        begin = data.rfind(b"\n", start, stop - 1) + 1
        at = line_time(data[max(begin, start) : stop])
        if at is not None:
            return at
        stop = max(begin, start)
    return None


def split_block(block: RecordBlock, cut: int, records: int | None = None) -> tuple[RecordBlock, RecordBlock | None]:
    """``block`` cut after the line ending at or after byte ``cut`` (or after ``records``
    lines); the tail is None when nothing is left. Only the pieces' edges are parsed."""
    data = block.data
    if records is None:
        pos = data.find(b"\n", max(cut, 1) - 1) + 1 or len(data)
    else:
        pos = 0
        for _ in range(records):
            pos = data.index(b"\n", pos) + 1
    if pos >= len(data):
        return block, None
    head_records = data.count(b"\n", 0, pos) if records is None else records
    head_last = _last_time(data, 0, pos)
    tail_first = _first_time(data, pos, len(data))
    head = RecordBlock(data[:pos], head_records, block.first_at if head_last else None, head_last)
    tail = RecordBlock(data[pos:], block.records - head_records, tail_first, block.last_at if tail_first else None)
    return head, tail


Encoding = Literal["jsonl", "jsonl+zstd"]
CHUNK_SUFFIXES: dict[str, str] = {"jsonl": ".jsonl", "jsonl+zstd": ".jsonl.zst"}
DEFAULT_ZSTD_LEVEL = -3
_compressors = threading.local()


def chunk_name(digest: str, encoding: str) -> str:
    return f"{digest}{CHUNK_SUFFIXES[encoding]}"


def _compress(data: bytes, level: int) -> bytes:
    # a compressor is not thread-safe, and building one per chunk costs more than a small chunk
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_compressors, "by_level", None)
    if cache is None:
        cache = _compressors.by_level = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return compressor.compress(data)


def inflating_reader(source: BinaryIO) -> BinaryIO:
    """The records of a stored zstd chunk, read across frames (a chunk is one frame today;
    a concatenation of frames is equally a valid zstd stream and must not be cut short)."""
    reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    return reader


def decode_chunk(stored: bytes, encoding: str, size_bytes: int) -> bytes:
    """A chunk's records from its stored bytes; never inflates beyond ``size_bytes`` + 1."""
    if encoding == "jsonl":
        return stored
    try:
        with inflating_reader(io.BytesIO(stored)) as reader:
            data = reader.read(size_bytes + 1)
    except zstandard.ZstdError as exc:
        raise EvidenceError(f"chunk does not decompress: {exc}") from exc
    if len(data) != size_bytes:
        more = "more" if len(data) > size_bytes else f"{len(data)}"
        raise EvidenceError(f"chunk inflates to {more} bytes, the manifest says {size_bytes}")
    return data


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


def write_chunk(
    directory: Path, index: int, parts: list[RecordBlock], encoding: str, level: int
) -> tuple[ManifestEntry, int | None]:
    """Store one chunk; returns its entry and the open descriptor still to be fsynced (None if
    the same chunk was already stored in this bundle).

    Runs on a sealing thread, several chunks at once: compressing, hashing and writing
    release the GIL. The digest is of the stored bytes, so what is checked is
    exactly what is on disk (decompression is deterministic)."""
    data = parts[0].data if len(parts) == 1 else b"".join([p.data for p in parts])
    stored = _compress(data, level) if encoding == "jsonl+zstd" else data
    digest = hashlib.sha256(stored).hexdigest()
    try:
        fd: int | None = write_unsynced(directory / chunk_name(digest, encoding), stored)
    except FileExistsError:
        fd = None  # identical chunk earlier in the same bundle: content addressing stores it once
    times = [p for p in parts if p.first_at is not None]
    entry = ManifestEntry(
        index=index,
        sha256=digest,
        size_bytes=len(data),
        records=sum(p.records for p in parts),
        first_at=times[0].first_at if times else None,
        last_at=times[-1].last_at if times else None,
        prev=GENESIS,
    )
    return entry, fd


def sync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
# fsyncs wait on the device, not the CPU: their own threads keep them from occupying the
# threads that compress, and several in flight keep the device's queue full
SYNC_THREADS = 4
# compression is the seal's CPU cost and releases the GIL: a thread per core runs it in
# parallel, but few, as each chunk in flight holds chunk_bytes of memory
SEAL_THREADS = min(4, max(2, os.cpu_count() or 1))


def _pool(name: str, threads: int) -> ThreadPoolExecutor:
    """The process's ``evidence-<name>`` threads, made on first use; threads of their own keep
    sealing from queueing behind unrelated to_thread calls."""
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=f"evidence-{name}")
        return pool


def _syncer() -> ThreadPoolExecutor:
    return _pool("fsync", SYNC_THREADS)


def _sealers() -> ThreadPoolExecutor:
    return _pool("seal", SEAL_THREADS)


def _seal_chunk(
    directory: Path, index: int, parts: list[RecordBlock], encoding: str, level: int
) -> tuple[ManifestEntry, Future[None] | None]:
    entry, fd = write_chunk(directory, index, parts, encoding, level)
    return entry, None if fd is None else _syncer().submit(sync_and_close, fd)


IN_FLIGHT = SEAL_THREADS + 1
MAX_UNSYNCED = 64
BLOCK_BYTES = 256 * 1024


class Chunker:
    """Gathers record blocks into chunks; each chunk is compressed, hashed, written and
    fsynced on the sealing threads while the next ones fill.

    A chunk closes at the first line end at or after ``chunk_bytes``, or after
    ``chunk_records`` records, however the producer cut its blocks. Up to ``in_flight``
    chunks are sealed at once, in whatever order they finish (one slow chunk must not idle a
    core), so memory stays bounded at ``in_flight + 1`` chunks. ``close`` returns the entries
    in stream order, and only once every chunk file is durable, so the manifest is never
    written before them.
    """

    def __init__(
        self,
        directory: Path,
        *,
        chunk_bytes: int,
        chunk_records: int | None,
        encoding: str = "jsonl+zstd",
        level: int = DEFAULT_ZSTD_LEVEL,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        if encoding not in CHUNK_SUFFIXES:
            raise ValueError(f"unknown chunk encoding {encoding!r}")
        self.directory = directory
        self.chunk_bytes = chunk_bytes
        self.chunk_records = chunk_records or 1 << 62
        self.encoding = encoding
        self.level = level
        self.in_flight = max(1, in_flight)
        self._entries: dict[int, ManifestEntry] = {}
        self._chunks = 0
        self._parts: list[RecordBlock] = []
        self._size = 0
        self._records = 0
        self._pending: set[asyncio.Future[tuple[ManifestEntry, Future[None] | None]]] = set()
        self._syncs: deque[Future[None]] = deque()

    @property
    def entries(self) -> list[ManifestEntry]:
        """The entries of the chunks sealed so far, in stream order."""
        return [self._entries[i] for i in sorted(self._entries)]

    async def add(self, block: RecordBlock) -> None:
        piece: RecordBlock | None = block
        while piece is not None and piece.records:
            room_records = self.chunk_records - self._records
            room_bytes = self.chunk_bytes - self._size
            if piece.records > room_records:
                head, piece = split_block(piece, 0, room_records)
            elif len(piece.data) >= room_bytes:
                head, piece = split_block(piece, room_bytes)
            else:
                head, piece = piece, None
            self._parts.append(head)
            self._size += len(head.data)
            self._records += head.records
            if self._size >= self.chunk_bytes or self._records >= self.chunk_records:
                await self.rotate()

    async def consume(self, blocks: AsyncIterator[RecordBlock]) -> None:
        async for block in blocks:
            await self.add(block)

    async def rotate(self) -> None:
        """Hand the filled chunk to a sealing thread; waits only when ``in_flight`` are pending."""
        while len(self._pending) >= self.in_flight:
            await self._collect()
        if self._parts:
            parts, self._parts, self._size, self._records = self._parts, [], 0, 0
            index, self._chunks = self._chunks, self._chunks + 1
            loop = asyncio.get_running_loop()
            seal = loop.run_in_executor(
                _sealers(), _seal_chunk, self.directory, index, parts, self.encoding, self.level
            )
            self._pending.add(seal)
            # a producer that never waits would keep the event loop from other tasks (such as
            # heartbeats) and from the sealing threads' results; once a chunk is enough, as a
            # turn of the loop per block costs more CPU than compressing it leaves spare
            await asyncio.sleep(0)

    async def _collect(self) -> None:
        done, self._pending = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
        failed: BaseException | None = None
        for future in done:
            # every chunk that did get written is recorded, so that abort waits for its fsync
            if (error := future.exception()) is not None:
                failed = failed or error
                continue
            entry, sync = future.result()
            self._entries[entry.index] = entry
            if sync is not None:
                self._syncs.append(sync)
        if failed is not None:
            raise failed
        while self._syncs and self._syncs[0].done():
            self._syncs.popleft().result()
        while len(self._syncs) > MAX_UNSYNCED:  # a slow device holds the stream back, not memory
            await asyncio.wrap_future(self._syncs.popleft())

    async def close(self) -> list[ManifestEntry]:
        """Every entry, in stream order, once every chunk file is durable."""
        await self.rotate()
        while self._pending:
            await self._collect()
        while self._syncs:
            await asyncio.wrap_future(self._syncs.popleft())
        return self.entries

    async def abort(self) -> None:
        """Wait for every write and fsync still running (the staging directory is removed next)."""
        if self._pending:
            results = await asyncio.gather(*self._pending, return_exceptions=True)
            self._pending = set()
            for result in results:
                # the stream already failed; that error is the one to report
                if isinstance(result, tuple) and result[1] is not None:
                    self._syncs.append(result[1])
        while self._syncs:
            try:
                await asyncio.wrap_future(self._syncs.popleft())
            except Exception:
                pass


async def record_blocks(
    records: AsyncIterator[Mapping[str, Any]], *, block_bytes: int = BLOCK_BYTES, block_records: int | None = None
) -> AsyncIterator[RecordBlock]:
    """Records serialised as canonical JSON lines and gathered into blocks."""
    encode = canonical_line
    limit, record_limit = block_bytes, block_records or 1 << 62
    lines: list[bytes] = []
    append = lines.append
    size = 0
    first_at: str | None = None
    last_at: str | None = None
    async for record in records:
        line = encode(record)
        append(line)
        size += len(line)
        at = record.get(TIME_FIELD)
        if at is not None:
            if type(at) is not str:
                at = time_text(at)
            last_at = at
            if first_at is None:
                first_at = at
        if size >= limit or len(lines) >= record_limit:
            yield RecordBlock(b"".join(lines), len(lines), first_at, last_at)
            lines.clear()
            size, first_at, last_at = 0, None, None
    if lines:
        yield RecordBlock(b"".join(lines), len(lines), first_at, last_at)


# ---------------------------------------------------------------- chain of bundles


def chain_lock(pause_dir: Path) -> AbstractContextManager[None]:
    """Serialises appends to a pause's chain of bundles."""
    return directory_lock(pause_dir, CHAIN_LOCK)


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


def chain_tip(
    pause_dir: Path, public_key: Ed25519PublicKey | None = None, chain_key: str | None = None
) -> ChainTip | None:
    """The pause's latest bundle. The head file is only a hint: a crash after a bundle was
    renamed into place but before the head was updated must not fork the chain, so the
    bundles themselves are followed from the hint to the end.

    With ``public_key`` and ``chain_key`` (the sealer's case), only bundles signed with that key
    and naming the key their path gives are followed: a bundle planted in the directory (a copy
    from another pause, a forgery) must not become the link the next bundle signs."""
    successors: dict[str, ChainTip] = {}
    for manifest_path in sorted(pause_dir.glob(f"*{BUNDLE_SUFFIX}/{MANIFEST}")):
        try:
            data = manifest_path.read_bytes()
            manifest = parse_manifest(data)
        except (OSError, EvidenceError):
            log.warning("evidence_chain_unreadable_manifest", path=str(manifest_path))
            continue
        if chain_key is not None and public_key is not None:
            expected = child_key(chain_key, manifest_path.parent.name.removesuffix(BUNDLE_SUFFIX))
            if manifest.key != expected or not _signed_by(public_key, manifest_path.parent, data):
                log.warning("evidence_chain_foreign_bundle_ignored", path=str(manifest_path))
                continue
        prev = manifest.previous.manifest_sha256 if manifest.previous else GENESIS
        successors.setdefault(prev, ChainTip(manifest.key, sha256_hex(data), manifest.chain_index))
    tip: ChainTip | None = None
    head_path = pause_dir / CHAIN_HEAD
    if head_path.exists():
        try:
            head = parse_head(head_path.read_bytes())
            tip = ChainTip(head.key, head.manifest_sha256, head.chain_index)
        except (OSError, EvidenceError):
            log.warning("evidence_chain_head_unreadable", path=str(head_path))
    seen: set[str] = set()
    cursor = tip.manifest_sha256 if tip else GENESIS
    while cursor in successors and cursor not in seen:
        seen.add(cursor)
        tip = successors[cursor]
        cursor = tip.manifest_sha256
    return tip


def _signed_by(public_key: Ed25519PublicKey, bundle: Path, manifest: bytes) -> bool:
    try:
        _, signature = parse_signature((bundle / SIGNATURE).read_bytes())
    except (OSError, EvidenceError):
        return False
    return keymod.verify_signature(public_key, signature, manifest)


def _catch_up_head(pause_dir: Path, signing_key: Ed25519PrivateKey, chain_key: str) -> None:
    current = chain_tip(pause_dir, signing_key.public_key(), chain_key)
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
    public_key = signing_key.public_key()
    chain_key = parent_key(key)
    with chain_lock(pause_dir):
        existing = bundle_ref_parts(final)
        if existing is not None:
            # another attempt of the same activity finished first
            shutil.rmtree(staging, ignore_errors=True)
            _catch_up_head(pause_dir, signing_key, chain_key)
            return existing
        tip = chain_tip(pause_dir, public_key, chain_key)
        manifest = build_manifest(
            key=key, pause=pause, tip=tip, raw_entries=raw_entries, signing_key=signing_key, encoding=encoding
        )
        data = canonical_json(manifest.model_dump(mode="json"))
        write_new(staging / MANIFEST, data)
        write_new(staging / SIGNATURE, signature_bytes(signing_key, data))
        fsync_dir(staging / CHUNKS)
        fsync_dir(staging)
        os.rename(staging, final)
        fsync_dir(pause_dir)
        digest = sha256_hex(data)
        publish_head(pause_dir, signing_key, ChainTip(key, digest, manifest.chain_index))
    log.info(
        "evidence_bundle_sealed",
        key=key,
        manifest_sha256=digest,
        records=manifest.records,
        chunks=manifest.chunk_count,
        chain_index=manifest.chain_index,
    )
    return digest, manifest.records, manifest.size_bytes, manifest.chunk_count


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


def check_chunking(chunk_bytes: int, chunk_records: int | None, compression: str) -> None:
    """Refuse chunking settings no store can seal with (every store checks the same, once, at opening)."""
    if chunk_bytes <= 0 or (chunk_records is not None and chunk_records <= 0):
        raise ValueError("chunk sizes must be positive")
    if compression not in ("zstd", "none"):
        raise ValueError(f"compression must be 'zstd' or 'none', not {compression!r}")
