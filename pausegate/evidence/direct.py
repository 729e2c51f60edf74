"""Chunk files written around the page cache: one copy into aligned memory, hashed there, and handed
to the disk with ``O_DIRECT``.

A buffered write copies every byte into the page cache, and the fsync that follows then has the
kernel write the pages back; on the machines measured (``bench/bench_seal_limits.py``) that path
ran at a fifth of single-thread SHA-256, while ``O_DIRECT`` writes from two threads ran faster
than SHA-256. ``O_DIRECT`` wants the memory, the file offset and the length aligned to the
device's block: chunks are copied into a page-aligned buffer (the copy a join would have made
anyway), the last block is padded with zeros and the file is truncated to its length. The
descriptor is still fsynced before the manifest names the chunk (the truncation and the file's
metadata are only durable then).

Where a filesystem refuses ``O_DIRECT`` (tmpfs, some network and FUSE filesystems), the same bytes
are written through the page cache instead, and that filesystem is not asked again.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from pausegate.evidence.files import FILE_MODE, write_unsynced

ALIGN = 4096  # a multiple of every logical block size in use (512 and 4096)
# a sealing thread keeps its buffer between chunks (a fresh mapping costs a page fault per 4 KiB),
# unless the chunk was larger than this
KEEP_BYTES = 32 * 1024 * 1024

_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_threads = threading.local()
_refused: set[int] = set()  # devices whose filesystem refused O_DIRECT
_refused_lock = threading.Lock()


class ChunkBuffer:
    """Page-aligned memory for one chunk's stored bytes, on one thread at a time."""

    def __init__(self, size: int) -> None:
        self.memory = mmap.mmap(-1, max(ALIGN, _aligned(size)))

    def fits(self, size: int) -> bool:
        return _aligned(size) <= len(self.memory)

    def done(self) -> None:
        """Give the buffer back to its thread (or to the system, if it is too large to keep)."""
        if len(self.memory) > KEEP_BYTES:
            self.memory.close()
        else:
            _threads.buffer = self


def _aligned(size: int) -> int:
    return (size + ALIGN - 1) & ~(ALIGN - 1)


def chunk_buffer(size: int) -> ChunkBuffer:
    """The calling thread's buffer, at least ``size`` bytes (plus padding to the next block)."""
    buffer: ChunkBuffer | None = getattr(_threads, "buffer", None)
    _threads.buffer = None  # taken: a failure before ``done`` must not leave it shared
    if buffer is None or not buffer.fits(size):
        if buffer is not None:
            buffer.memory.close()
        buffer = ChunkBuffer(size)
    return buffer


def copy_and_hash(buffer: ChunkBuffer, pieces: Sequence[bytes]) -> str:
    """Copy ``pieces`` one after the other into ``buffer``; the SHA-256 of the copied bytes, read
    from the buffer itself (what is written is what is hashed).

    All the copying first, then one update over the whole: hashlib lets go of the GIL while it
    hashes, and every time it does, this thread must wait to get the GIL back from a thread
    serialising records (up to the interpreter's switch interval), so once per chunk, not once per
    piece. SHA-256 is far slower than memory, so the bytes need not be in the cache."""
    memory = buffer.memory
    offset = 0
    for data in pieces:
        end = offset + len(data)
        memory[offset:end] = data
        offset = end
    view = memoryview(memory)
    try:
        with view[:offset] as written:
            return hashlib.sha256(written).hexdigest()
    finally:
        view.release()


def write_stored(path: Path, buffer: ChunkBuffer, size: int) -> int:
    """Create ``path`` (0600, ``FileExistsError`` if it exists) holding the first ``size`` bytes of
    ``buffer``; returns the open descriptor, which its owner must fsync and close."""
    if _O_DIRECT:
        device = os.stat(path.parent).st_dev
        if device not in _refused:
            try:
                return _write_direct(path, buffer, size)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                with _refused_lock:
                    _refused.add(device)
    view = memoryview(buffer.memory)
    try:
        return write_unsynced(path, view[:size])
    finally:
        view.release()


def _write_direct(path: Path, buffer: ChunkBuffer, size: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_DIRECT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the mode given to open is filtered by the umask
        padded = _aligned(size)
        memory = buffer.memory
        memory[size:padded] = bytes(padded - size)  # no stale bytes of an earlier chunk on disk
        view = memoryview(memory)
        try:
            done = 0
            while done < padded:
                done += os.pwrite(fd, view[done:padded], done)
        finally:
            view.release()
        if padded != size:
            os.ftruncate(fd, size)
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError) and exc.errno == errno.EINVAL:
            os.unlink(path)  # refused: the caller writes it through the page cache instead
        raise
    return fd
