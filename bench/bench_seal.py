"""Seal N MiB of synthetic audit records and compare with plain SHA-256 over the same bytes.

Everything is measured in one run, over one byte stream (a pool of realistic audit records
repeated until N MiB):

* sha256:      hashlib.sha256 over those bytes, in chunk-sized buffers built beforehand (only
               the hashing is timed: the fastest anything can read each byte once);
* lines:       ``seal_lines`` of the stream as ``(line, at)`` pairs, i.e. already serialised;
* end to end:  ``seal`` of the same records as dicts (canonical JSON serialisation included).

Both seals do the full job (content-addressed chunks, fsync per chunk, hash-chained signed
manifest, staging + rename) and their bundles are verified afterwards. Ratios are seal
throughput / sha256 throughput; the target is >= 0.7. Also reported: the cost of merely
iterating the input stream (a floor no consumer of a per-record async iterator can beat), peak
RSS per phase, and the tracemalloc peak of a separate, untimed pass (tracing slows Python down).

Writes under a temporary directory on the project's disk unless ``--dir`` says otherwise.

Usage: python bench/bench_seal.py [--mb 1024] [--end-to-end-mb N] [--trace-mb 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import hashlib
import itertools
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pausegate.evidence._files import canonical_json
from pausegate.evidence.seal import DEFAULT_CHUNK_BYTES
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import verify_bundle

T0 = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)
POOL = 4096
MiB = 2**20


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


class Stream:
    """The first ``count`` records of the pool repeated: at least ``total`` bytes of JSON lines."""

    def __init__(self, total: int) -> None:
        self.records = [record(i) for i in range(POOL)]
        self.pairs = [(canonical_json(r) + b"\n", r["at"]) for r in self.records]
        sizes = list(itertools.accumulate(len(line) for line, _ in self.pairs))
        cycles, rest = divmod(total, sizes[-1])
        partial = bisect.bisect_left(sizes, rest) + 1 if rest else 0
        self.count = cycles * POOL + partial
        self.size = cycles * sizes[-1] + (sizes[partial - 1] if partial else 0)

    async def lines(self) -> AsyncIterator[tuple[bytes, str | None]]:
        for pair in itertools.islice(itertools.cycle(self.pairs), self.count):
            yield pair

    async def dicts(self) -> AsyncIterator[dict[str, Any]]:
        for rec in itertools.islice(itertools.cycle(self.records), self.count):
            yield rec

    def blocks(self, block: int) -> list[tuple[int, int]]:
        """(start, count) record ranges of about ``block`` bytes each, covering the stream."""
        out, start, size, n = [], 0, 0, 0
        for line, _ in itertools.islice(itertools.cycle(self.pairs), self.count):
            size += len(line)
            n += 1
            if size >= block:
                out.append((start, n))
                start, size, n = start + n, 0, 0
        if n:
            out.append((start, n))
        return out

    def block_bytes(self, start: int, n: int) -> bytes:
        pairs = self.pairs
        return b"".join(pairs[(start + k) % POOL][0] for k in range(n))


def plain_sha256(stream: Stream, block: int) -> tuple[float, str]:
    """Seconds spent in hashlib alone over the stream's bytes, and the digest (as a check)."""
    h = hashlib.sha256()
    spent = 0.0
    for start, n in stream.blocks(block):
        data = stream.block_bytes(start, n)
        t = time.perf_counter()
        h.update(data)
        spent += time.perf_counter() - t
    return spent, h.hexdigest()


async def drain(source: AsyncIterator[Any]) -> None:
    async for _ in source:
        pass


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def filesystem(path: Path) -> str:
    """Type and mount point of the filesystem holding ``path`` (longest match in /proc/mounts)."""
    resolved = str(path.resolve())
    best_mount, best_type = "?", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, mount, fstype, *_ = line.split()
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and (best_mount == "?" or len(mount) >= len(best_mount)):
                    best_mount, best_type = mount, fstype
    except OSError:
        pass
    return f"{best_type} at {best_mount}"


def rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def timed(run: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[float, Any, str]:
    """(seconds, result, "peak RSS MiB during the call (RSS before it)")."""
    gc.collect()
    before = rss_mib()
    exact = reset_peak_rss()
    t = time.perf_counter()
    result = asyncio.run(run())
    spent = time.perf_counter() - t
    peak = f"{peak_rss_mib():.0f} MiB ({before:.0f} before)" if exact else f"{peak_rss_mib():.0f} MiB (process)"
    return spent, result, peak


def traced_peak(run: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    """tracemalloc's peak (MiB) of Python allocations during the call."""
    gc.collect()
    tracemalloc.start()
    try:
        asyncio.run(run())
        return tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="MiB of records to seal (default 1024)")
    parser.add_argument("--end-to-end-mb", type=int, default=None, help="MiB for the dict run (default: --mb)")
    parser.add_argument("--trace-mb", type=int, default=256, help="MiB for the tracemalloc passes (0: skip)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir beside this script)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip verifying the sealed bundles")
    args = parser.parse_args()
    parent = args.dir if args.dir is not None else Path(__file__).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=".bench-seal-", dir=parent))
    try:
        store = LocalEvidenceStore(base / "evidence", base / "key.pem")
        chunk = store.chunk_bytes
        assert chunk == DEFAULT_CHUNK_BYTES
        print(f"writing to {base} ({filesystem(base)}); {os.cpu_count()} CPUs; chunk {chunk // MiB} MiB")

        stream = Stream(args.mb * MiB)
        hash_s, digest = plain_sha256(stream, chunk)
        mib = stream.size / MiB
        sha_rate = mib / hash_s
        iter_s, _, _ = timed(lambda: drain(stream.lines()))
        print(f"stream:     {mib:.0f} MiB, {stream.count} records of ~{stream.size // stream.count} bytes")
        print(f"  sha256    {hash_s:7.2f} s  {sha_rate:8.1f} MiB/s  (hashlib alone, same bytes)")
        print(f"  iterate   {iter_s:7.2f} s  {mib / iter_s:8.1f} MiB/s  (just consuming the (line, at) iterator)")

        seal_s, (ref, chunks), rss = timed(lambda: store.seal_lines("bench-lines/sealed", stream.lines()))
        assert ref.size_bytes == stream.size and ref.records == stream.count
        rate = mib / seal_s
        print(f"lines:      seal_lines, {chunks} chunks")
        print(f"  seal      {seal_s:7.2f} s  {rate:8.1f} MiB/s  ratio {rate / sha_rate:.2f}  peak RSS {rss}")

        e2e = stream if args.end_to_end_mb in (None, args.mb) else Stream(args.end_to_end_mb * MiB)
        if e2e is not stream:
            hash2_s, _ = plain_sha256(e2e, chunk)
        else:
            hash2_s = hash_s
        mib2 = e2e.size / MiB
        e2e_s, (ref2, _), rss2 = timed(lambda: store.seal("bench-records/sealed", e2e.dicts()))
        assert ref2.size_bytes == e2e.size and ref2.records == e2e.count
        rate2 = mib2 / e2e_s
        print(f"end to end: seal from {e2e.count} dicts, {mib2:.0f} MiB")
        print(
            f"  seal      {e2e_s:7.2f} s  {rate2:8.1f} MiB/s  ratio {rate2 / (mib2 / hash2_s):.2f}  "
            f"peak RSS {rss2}"
        )

        if not args.no_verify:
            for key in ("bench-lines/sealed", "bench-records/sealed"):
                report = verify_bundle(store.bundle_path(key))
                assert report.ok, report.problems
            chunk_digest = hashlib.sha256()
            manifest = store.read_json("bench-lines/sealed")
            for entry in manifest["entries"]:
                path = store.bundle_path("bench-lines/sealed") / "chunks" / f"{entry['sha256']}.jsonl"
                with path.open("rb") as f:
                    while block := f.read(MiB):
                        chunk_digest.update(block)
            assert chunk_digest.hexdigest() == digest, "sealed bytes differ from the hashed stream"
            print("verified:   both bundles verify offline; sealed bytes are the hashed bytes")

        if args.trace_mb:
            small = Stream(args.trace_mb * MiB)
            peak_lines = traced_peak(lambda: store.seal_lines("bench-trace-lines/sealed", small.lines()))
            peak_dicts = traced_peak(lambda: store.seal("bench-trace-records/sealed", small.dicts()))
            print(
                f"tracemalloc peak (separate untimed {args.trace_mb} MiB passes): "
                f"seal_lines {peak_lines:.1f} MiB, seal {peak_dicts:.1f} MiB"
            )
        whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RSS high-water mark of the whole run: {whole:.0f} MiB")
        print(
            f"summary: seal_lines {rate / sha_rate:.2f}, seal {rate2 / (mib2 / hash2_s):.2f} "
            "of plain sha256 throughput (target >= 0.7)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
