"""Seal N MB of synthetic audit records and compare with plain hashlib.sha256 over the same bytes.

Two figures:
* store: sealing records that are already JSON lines (chunking, hashing, writing, fsync,
  manifest, signature) against sha256 alone over the same bytes; the target is >= 0.7.
* end to end: ``seal`` from Python dicts, where canonical JSON serialisation dominates.

Usage: PYTHONPATH=. python bench/bench_seal.py [--mb 1024] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import resource
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pausegate.evidence._files import canonical_json
from pausegate.evidence.store import LocalEvidenceStore

T0 = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)
POOL = 4096


def record(i: int) -> dict[str, Any]:
    return {
        "at": (T0 + timedelta(milliseconds=i)).isoformat(),
        "user": f"employee_{i % 5000:04d}",
        "database": "hr",
        "kind": "SELECT",
        "objects": ["telemetry.keystrokes"],
        "outcome": "ok",
        "session_id": f"6b0bc72d.{i % 65536:x}",
        "statement": "SELECT typed_content FROM telemetry.keystrokes "
        f"WHERE employee = 'employee_{i % 977:04d}'",
    }


def line_pool() -> list[tuple[bytes, str]]:
    return [(canonical_json(r) + b"\n", r["at"]) for r in (record(i) for i in range(POOL))]


async def lines(total: int, pool: list[tuple[bytes, str]]) -> AsyncIterator[tuple[bytes, str | None]]:
    produced = 0
    i = 0
    while produced < total:
        line, at = pool[i % POOL]
        produced += len(line)
        i += 1
        yield line, at


async def records(total: int, pool: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Dicts from a pre-built pool, so building them is not part of the measurement."""
    produced = 0
    i = 0
    while produced < total:
        produced += 240  # approximate line size, enough to stop near the target
        i += 1
        yield pool[i % POOL]


def hash_same_bytes(total: int, pool: list[tuple[bytes, str]], chunk: int) -> float:
    """sha256 over the same line stream, joined into the same chunk sizes (no I/O)."""
    t = time.perf_counter()
    buf: list[bytes] = []
    size = produced = 0
    i = 0
    while produced < total:
        line = pool[i % POOL][0]
        buf.append(line)
        size += len(line)
        produced += len(line)
        i += 1
        if size >= chunk:
            hashlib.sha256(b"".join(buf)).hexdigest()
            buf, size = [], 0
    if buf:
        hashlib.sha256(b"".join(buf)).hexdigest()
    return time.perf_counter() - t


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument(
        "--end-to-end-mb", type=int, default=None, help="size for the dict run (default: --mb/4)"
    )
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    total = args.mb * 1024 * 1024
    e2e_total = (args.end_to_end_mb or max(1, args.mb // 4)) * 1024 * 1024
    base = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        store = LocalEvidenceStore(base / "evidence", base / "key.pem")
        pool = line_pool()
        rss_before = peak_rss_mb()

        t = time.perf_counter()
        ref, chunks = asyncio.run(store.seal_lines("bench/pause/lines", lines(total, pool)))
        seal_s = time.perf_counter() - t
        rss_seal = peak_rss_mb()
        hash_s = hash_same_bytes(total, pool, store.chunk_bytes)
        mb = ref.size_bytes / 2**20
        print(f"store:      {mb:.0f} MiB, {ref.records} records, {chunks} chunks")
        print(f"  seal      {seal_s:7.2f} s  {mb / seal_s:8.1f} MiB/s")
        print(f"  sha256    {hash_s:7.2f} s  {mb / hash_s:8.1f} MiB/s  (same bytes, same chunking, no I/O)")
        print(f"  ratio     {hash_s / seal_s:.2f}  (seal throughput / sha256 throughput; target >= 0.7)")

        t = time.perf_counter()
        ref2, _ = asyncio.run(
            store.seal("bench/pause/records", records(e2e_total, [record(i) for i in range(POOL)]))
        )
        e2e_s = time.perf_counter() - t
        mb2 = ref2.size_bytes / 2**20
        t = time.perf_counter()
        for c in sorted((store.bundle_path("bench/pause/records") / "chunks").iterdir()):
            hashlib.sha256(c.read_bytes()).hexdigest()
        h2 = time.perf_counter() - t
        print(f"end to end: {mb2:.0f} MiB from {ref2.records} dicts")
        print(
            f"  seal      {e2e_s:7.2f} s  {mb2 / e2e_s:8.1f} MiB/s  (canonical JSON serialisation included)"
        )
        print(
            f"  sha256    {h2:7.2f} s  {mb2 / h2:8.1f} MiB/s  "
            f"(ratio {h2 / e2e_s:.2f}; includes reading the chunks)"
        )
        print(
            f"peak RSS:   {rss_before:.0f} MiB before, {rss_seal:.0f} MiB after the store run, "
            f"{peak_rss_mb():.0f} MiB at the end"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
