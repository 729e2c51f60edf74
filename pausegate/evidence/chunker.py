"""The chunk pipeline: record blocks gathered into chunks, each compressed, hashed, written and
fsynced on threads of its own while the next ones fill (one chunk file per ``ManifestEntry``)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import zstandard

from pausegate.evidence.blocks import RecordBlock, split_block
from pausegate.evidence.bundle import CHUNK_SUFFIXES, GENESIS, ManifestEntry, chunk_name
from pausegate.evidence.direct import chunk_buffer, copy_and_hash, write_stored

# 8 MiB: each chunk costs a file, an fsync and hand-offs between threads; at 4 MiB sealing
# took about a tenth more CPU (bench/bench_seal.py --chunk-mb 4). Readers and verify hold
# one chunk at a time, sealing SEAL_THREADS + 2.
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
DEFAULT_ZSTD_LEVEL = -3
_compressors = threading.local()


def _compress(data: bytes, level: int) -> bytes:
    # a compressor is not thread-safe, and building one per chunk costs more than a small chunk
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_compressors, "by_level", None)
    if cache is None:
        cache = _compressors.by_level = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return compressor.compress(data)


def write_chunk(
    directory: Path, index: int, parts: list[RecordBlock], encoding: str, level: int
) -> tuple[ManifestEntry, int | None]:
    """Store one chunk; returns its entry and the open descriptor still to be fsynced (None if
    the same chunk was already stored in this bundle).

    Runs on a sealing thread, several chunks at once: compressing, hashing and writing
    release the GIL. The stored bytes are copied once, into the thread's page-aligned buffer,
    and hashed there: the digest is of exactly the bytes handed to the disk (decompression is
    deterministic), and the buffer is what an ``O_DIRECT`` write needs."""
    if encoding == "jsonl+zstd":
        data = parts[0].data if len(parts) == 1 else b"".join([p.data for p in parts])
        pieces = [_compress(data, level)]
        size_bytes = len(data)
    else:
        pieces = [p.data for p in parts]
        size_bytes = sum(map(len, pieces))
    stored = sum(map(len, pieces))
    buffer = chunk_buffer(stored)
    try:
        digest = copy_and_hash(buffer, pieces)
        try:
            fd: int | None = write_stored(directory / chunk_name(digest, encoding), buffer, stored)
        except FileExistsError:
            fd = None  # identical chunk earlier in the same bundle: content addressing stores it once
    finally:
        buffer.done()
    times = [p for p in parts if p.first_at is not None]
    entry = ManifestEntry(
        index=index,
        sha256=digest,
        size_bytes=size_bytes,
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
# compression and hashing are the seal's CPU cost and release the GIL: a thread per core runs
# them in parallel, and one more keeps the cores busy while a thread waits on its O_DIRECT write
# (uncompressed chunks sealed about half again as fast with 3 threads as with 2 on 2 cores); but
# few, as each chunk in flight holds chunk_bytes of memory, and each thread a buffer that size
SEAL_THREADS = min(4, max(2, os.cpu_count() or 1) + 1)


def _pool(name: str, threads: int) -> ThreadPoolExecutor:
    """The process's ``evidence-<name>`` threads, made on first use; threads of their own keep
    sealing from queueing behind unrelated to_thread calls."""
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=f"evidence-{name}")
        return pool


def syncer() -> ThreadPoolExecutor:
    return _pool("fsync", SYNC_THREADS)


def _sealers() -> ThreadPoolExecutor:
    return _pool("seal", SEAL_THREADS)


def _seal_chunk(
    directory: Path, index: int, parts: list[RecordBlock], encoding: str, level: int
) -> tuple[ManifestEntry, Future[None] | None]:
    entry, fd = write_chunk(directory, index, parts, encoding, level)
    return entry, None if fd is None else syncer().submit(sync_and_close, fd)


IN_FLIGHT = SEAL_THREADS + 1
MAX_UNSYNCED = 64


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


def check_chunking(chunk_bytes: int, chunk_records: int | None, compression: str) -> None:
    """Refuse chunking settings no store can seal with (every store checks the same, once, at opening)."""
    if chunk_bytes <= 0 or (chunk_records is not None and chunk_records <= 0):
        raise ValueError("chunk sizes must be positive")
    if compression not in ("zstd", "none"):
        raise ValueError(f"compression must be 'zstd' or 'none', not {compression!r}")
