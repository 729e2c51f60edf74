"""What bounds sealing on this machine: the ceilings ``bench_seal.py`` runs into, in one run,
each as a ratio to single-thread SHA-256 over the same amount of data.

* sha256 x1 / x2:        hashlib on one thread, and on two at once (does hashing scale?);
* memory copy:           copying buffers larger than the cache (what joining chunks costs);
* zstd x1 / x2:          compressing realistic chunks of the store's size and level, one thread and
                         two at once, with the CPU each chunk took (does compression scale?);
* write + fsync:         buffered writes of chunk-sized files, fsynced (the durable path);
* O_DIRECT:              the same files written around the page cache by 2 threads, then fsynced.

Writes under a temporary directory beside this script unless ``--dir`` says otherwise.

Usage: PYTHONPATH=. python bench/bench_seal_limits.py [--mb 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zstandard
from bench_seal import Stream

from pausegate.evidence.blocks import RecordBlock
from pausegate.evidence.chunker import DEFAULT_CHUNK_BYTES, DEFAULT_ZSTD_LEVEL

MiB = 2**20


def chunks_of(stream: Stream) -> list[bytes]:
    out, parts, size = [], [], 0
    for block in stream.iter_blocks():
        parts.append(block.data)
        size += len(block.data)
        if size >= DEFAULT_CHUNK_BYTES:
            out.append(b"".join(parts))
            parts, size = [], 0
    return out


def on_threads(threads: int, work: Callable[[bytes], object], items: list[bytes]) -> float:
    """Seconds to run ``work`` over ``items`` on ``threads`` threads."""
    with ThreadPoolExecutor(threads) as pool:
        t = time.perf_counter()
        list(pool.map(work, items))
        return time.perf_counter() - t


def compress_cpu(level: int, items: list[bytes], threads: int) -> tuple[float, float]:
    """(seconds, mean CPU milliseconds per chunk) compressing ``items`` on ``threads`` threads."""
    local = threading.local()
    cpu: list[float] = []

    def work(data: bytes) -> None:
        if not hasattr(local, "c"):
            local.c = zstandard.ZstdCompressor(level=level)
        t = time.thread_time()
        local.c.compress(data)
        cpu.append(time.thread_time() - t)

    seconds = on_threads(threads, work, items)
    return seconds, 1000 * sum(cpu) / len(cpu)


def write_files(directory: Path, items: list[bytes], *, direct: bool) -> float:
    """Seconds to write each item to its own new file and make them all durable."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_DIRECT if direct else 0)
    local = threading.local()
    fds: list[int] = []

    def write(item: tuple[int, bytes]) -> None:
        n, data = item
        view = memoryview(data)
        if direct:  # O_DIRECT wants aligned memory and whole blocks
            buf = getattr(local, "buf", None)
            size = (len(data) + 4095) & ~4095
            if buf is None or len(buf) < size:
                buf = local.buf = mmap.mmap(-1, size)
            buf[: len(data)] = data
            view = memoryview(buf)[:size]
        fd = os.open(directory / f"{n}.chunk", flags, 0o600)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], done)
        if direct:
            os.ftruncate(fd, len(data))
        view.release()
        fds.append(fd)

    t = time.perf_counter()
    with ThreadPoolExecutor(2 if direct else 1) as pool:
        list(pool.map(write, enumerate(items)))
        list(pool.map(os.fsync, fds))
    seconds = time.perf_counter() - t
    for fd in fds:
        os.close(fd)
    return seconds


def chunk_pieces(blocks: Iterable[RecordBlock], limit: int) -> list[bytes]:
    """The blocks joined into chunk-sized pieces, at most ``limit`` bytes in all (at least one piece)."""
    out: list[bytes] = []
    parts: list[bytes] = []
    size = total = 0
    for block in blocks:
        parts.append(block.data)
        size += len(block.data)
        if size >= DEFAULT_CHUNK_BYTES:
            out.append(b"".join(parts))
            total += size
            parts, size = [], 0
            if total >= limit:
                break
    if parts and not out:
        out.append(b"".join(parts))
    return out


def zstd_seconds(items: list[bytes], threads: int) -> float:
    """Seconds to compress ``items`` at the store's level on ``threads`` threads (a compressor each)."""
    local = threading.local()

    def work(data: bytes) -> None:
        if not hasattr(local, "c"):
            local.c = zstandard.ZstdCompressor(level=DEFAULT_ZSTD_LEVEL)
        local.c.compress(data)

    return on_threads(threads, work, items)


def durable_write_seconds(directory: Path, items: list[bytes], *, direct: bool) -> float | None:
    """``write_files`` in a fresh directory under ``directory``; None where O_DIRECT is refused."""
    where = Path(tempfile.mkdtemp(prefix="direct-" if direct else "buffered-", dir=directory))
    try:
        return write_files(where, items, direct=direct)
    except OSError:
        return None
    finally:
        shutil.rmtree(where, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="MiB per measurement (default 256)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: beside this script)")
    args = parser.parse_args()
    parent = args.dir if args.dir is not None else Path(__file__).resolve().parent
    base = Path(tempfile.mkdtemp(prefix=".bench-limits-", dir=parent))
    try:
        records = chunks_of(Stream(args.mb * MiB))
        noise = [os.urandom(DEFAULT_CHUNK_BYTES) for _ in range(len(records))]
        mib = sum(map(len, records)) / MiB
        sha1 = on_threads(1, lambda d: hashlib.sha256(d).digest(), records)
        base_rate = mib / sha1

        def row(label: str, seconds: float, note: str = "") -> None:
            rate = mib / seconds
            print(f"{label:22s} {rate:8.0f} MiB/s  ratio {rate / base_rate:5.2f}  {note}")

        print(f"{os.cpu_count()} CPUs; {len(records)} chunks of {DEFAULT_CHUNK_BYTES // MiB} MiB, {mib:.0f} MiB")
        row("sha256 x1", sha1, "(the baseline)")
        row("sha256 x2", on_threads(2, lambda d: hashlib.sha256(d).digest(), records), "(two threads at once)")
        row("memory copy", on_threads(1, bytearray, noise), "(buffers beyond the cache)")
        one, cpu_one = compress_cpu(DEFAULT_ZSTD_LEVEL, records, 1)
        two, cpu_two = compress_cpu(DEFAULT_ZSTD_LEVEL, records, 2)
        row(f"zstd {DEFAULT_ZSTD_LEVEL} x1", one, f"({cpu_one:.1f} ms CPU per chunk)")
        row(f"zstd {DEFAULT_ZSTD_LEVEL} x2", two, f"({cpu_two:.1f} ms CPU per chunk)")
        (base / "buffered").mkdir()
        row("write + fsync", write_files(base / "buffered", noise, direct=False), "(one writer, page cache)")
        (base / "direct").mkdir()
        try:
            seconds = write_files(base / "direct", noise, direct=True)
            row("O_DIRECT + fsync", seconds, "(two writers, copy to aligned memory included)")
        except OSError as exc:
            print(f"O_DIRECT               not supported here: {exc}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
