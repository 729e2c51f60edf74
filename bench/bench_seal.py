"""Seal N MiB of audit records and compare with plain SHA-256 over the same bytes, in one run.

The records look like those the PostgreSQL audit source produces (statement, user, session,
pid, application, objects, time), drawn from a seeded generator so the figures can be rerun.
A pool of about 96 MiB of them, serialised as canonical JSON lines, is repeated until N MiB;
the pool is far larger than a chunk and not a multiple of the block size, so no two chunks
are alike and nothing is deduplicated (checked), and it is larger than a server's last-level
cache, so every pass reads the bytes from memory as a stream of a gigabyte would.

Measured over that one byte stream, cut into the same ~256 KiB blocks for everyone. The
blocks of one pass over the pool are made once and handed out again, so the baseline and the
seals read the very same objects and none pays for producing them (``--fresh-blocks`` cuts
every block anew while it is consumed instead: the seal then also pays for copying its input,
which the timed baseline does not):

* sha256:        hashlib.sha256 over the blocks (only the hashing is timed: the fastest
                 anything can read each byte once, on one core);
* blocks:        ``seal_blocks`` with the store's defaults (zstd-compressed chunks);
* blocks, plain: ``seal_blocks`` storing chunks uncompressed (the disk's fsync bandwidth);
* end to end:    ``seal`` of the same records as dicts (canonical JSON serialisation included;
                 the cost of serialising one record is printed on its own).

Beside each path, the same run measures what bounds it on this machine, over the stream's own
bytes and as a ratio to SHA-256 measured just before (``ceilings:`` line, and ``(ceiling N)``
after each ratio): zstd at the store's level on as many threads as sealing uses (blocks);
writing chunk-sized files and fsyncing them, with ``O_DIRECT`` as the store does and through the
page cache (plain); iterating the records and serialising them on the event loop's thread, as
the seal does and with orjson alone (dicts: that work holds the GIL, so no other thread can share
it); and the fixed cost of a seal of one record, once the store's threads are running (the
waits on the device that make a chunk, the manifest and the chain's head durable, which a small
bundle cannot amortise). A path whose ceiling is below the target cannot reach it here.

A shared virtual machine's speed drifts by a tenth or more from one second to the next, so
the baseline and the seals are run in turn, ``--rounds`` times: each round's ratio is against
the baseline measured just before it, and the summary gives the median round.
``bench_seal_limits.py`` measures the machine's ceilings the seal runs into.

Every seal does the whole job: content-addressed chunks fsynced before the manifest, a
hash-chained, Ed25519-signed manifest, staging and rename; the bundles are verified afterwards
and the records read back from them are compared with the hashed bytes. Ratios are seal
throughput / sha256 throughput; the target is >= 0.7 (the summary line gives the ceilings after
the ratios, in the same order). Peak RSS is reported per phase and a
separate, untimed pass gives tracemalloc's peak (tracing slows Python down).

Writes under a temporary directory on the project's disk unless ``--dir`` says otherwise.

Usage: PYTHONPATH=. python bench/bench_seal.py [--mb 1024] [--rounds 3] [--chunk-mb 8] [--pool-mb 96]
                                  [--fresh-blocks] [--end-to-end-mb N] [--trace-mb 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import hashlib
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from pausegate.evidence.blocks import BLOCK_BYTES, RecordBlock, record_blocks
from pausegate.evidence.bundle import chunk_name, decode_chunk
from pausegate.evidence.files import canonical_line
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import verify_bundle

T0 = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)
MiB = 2**20
POOL_BYTES = 96 * MiB + 12_345  # --pool-mb sets another size (the odd bytes stay)
TABLES = ("telemetry.keystrokes", "telemetry.mouse_events", "telemetry.sessions", "telemetry.window_titles")
COLUMNS = ("*", "typed_content", "employee, typed_content, captured_at", "x, y, button, captured_at")
APPS = ("psql", "metabase", "DBeaver 24.1.0 - Main", "python-psycopg", "jupyter-kernel")


def audit_records(seed: int = 7) -> Iterator[dict[str, Any]]:
    """An endless, reproducible stream of statement records, in time order."""
    rng = random.Random(seed)
    i = 0
    while True:
        table = rng.choice(TABLES)
        statement = (
            f"SELECT {rng.choice(COLUMNS)} FROM {table} WHERE employee = 'employee_{rng.randrange(5000):04d}' "
            f"AND captured_at > now() - interval '{rng.randrange(1, 90)} days' LIMIT {rng.randrange(1, 10_000)}"
        )
        failed = rng.random() < 0.02
        yield {
            "at": (T0 + timedelta(microseconds=i * 997 + rng.randrange(997))).isoformat(),
            "user": f"employee_{rng.randrange(5000):04d}",
            "database": "hr",
            "kind": "SELECT",
            "objects": [table],
            "outcome": "error" if failed else "ok",
            "sqlstate": "42501" if failed else None,
            "session_id": f"{rng.getrandbits(32):08x}.{rng.getrandbits(16):x}",
            "pid": rng.randrange(1000, 4_000_000),
            "application_name": rng.choice(APPS),
            "statement": statement,
        }
        i += 1


class Stream:
    """``total`` bytes (rounded up to whole records) of the pool's lines, repeated."""

    def __init__(self, total: int, pool_bytes: int = POOL_BYTES, *, fresh: bool = False) -> None:
        lines: list[bytes] = []
        self.records: list[dict[str, Any]] = []
        size = 0
        for record in audit_records():
            line = canonical_line(record)
            lines.append(line)
            self.records.append(record)
            size += len(line)
            if size >= pool_bytes:
                break
        self.pool = b"".join(lines)
        self.times = [r["at"] for r in self.records]
        self.ends: list[int] = []  # end offset of each pool line
        pos = 0
        for line in lines:
            pos += len(line)
            self.ends.append(pos)
        cycles, rest = divmod(total, len(self.pool))
        partial = bisect.bisect_left(self.ends, rest) + 1 if rest else 0
        self.count = cycles * len(lines) + partial
        self.size = cycles * len(self.pool) + (self.ends[partial - 1] if partial else 0)
        self._passes: dict[int, dict[int, RecordBlock]] = {}
        self.fresh = fresh

    def _block(self, line: int, left: int, block: int) -> RecordBlock:
        """The block of whole lines from pool line ``line``: about ``block`` bytes, at most
        ``left`` records, never past the pool's end."""
        pool, ends, times = self.pool, self.ends, self.times
        start = ends[line - 1] if line else 0
        stop_line = min(bisect.bisect_left(ends, start + block), len(ends) - 1, line + left - 1)
        return RecordBlock(pool[start : ends[stop_line]], stop_line - line + 1, times[line], times[stop_line])

    def _one_pass(self, block: int) -> dict[int, RecordBlock]:
        """The blocks of one pass over the pool, by the pool line each starts at; made once."""
        made = self._passes.get(block)
        if made is None:
            made, line = {}, 0
            while line < len(self.ends):
                made[line] = self._block(line, len(self.ends) - line, block)
                line += made[line].records
            self._passes[block] = made
        return made

    def iter_blocks(self, block: int = BLOCK_BYTES) -> Iterator[RecordBlock]:
        """The stream as blocks of whole lines, about ``block`` bytes each. Every pass over the
        pool is cut the same way, so the blocks of one pass are made once and handed out
        again (unless ``fresh``): the baseline and the seals get the very same objects, and
        neither pays for making them. Only a block cut short by the stream's end is made anew."""
        made = {} if self.fresh else self._one_pass(block)
        left, line = self.count, 0  # records still to emit, next pool line
        while left:
            cut = made.get(line)
            if cut is None or cut.records > left:
                cut = self._block(line, left, block)
            yield cut
            left -= cut.records
            line = (line + cut.records) % len(self.ends)

    async def blocks(self) -> AsyncIterator[RecordBlock]:
        for block in self.iter_blocks():
            yield block

    async def dicts(self) -> AsyncIterator[dict[str, Any]]:
        records, n = self.records, len(self.records)
        for i in range(self.count):
            yield records[i % n]


def plain_sha256(stream: Stream) -> tuple[float, str]:
    """Seconds spent in hashlib alone over the stream's blocks, and the digest (as a check)."""
    h = hashlib.sha256()
    spent = 0.0
    for block in stream.iter_blocks():
        t = time.perf_counter()
        h.update(block.data)
        spent += time.perf_counter() - t
    return spent, h.hexdigest()


def iterate_only(stream: Stream) -> float:
    t = time.perf_counter()
    for _ in stream.iter_blocks():
        pass
    return time.perf_counter() - t


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[float, Any, str]:
    """(seconds, result, "CPU seconds of every thread, peak RSS MiB during the call (RSS before it)")."""
    gc.collect()
    before = _status_mib("VmRSS:")
    exact = reset_peak_rss()
    cpu = cpu_seconds()
    t = time.perf_counter()
    result = asyncio.run(run())
    spent = time.perf_counter() - t
    cpu = cpu_seconds() - cpu
    peak = _status_mib("VmHWM:")
    rss = f"{peak:.0f} MiB ({before:.0f} before)" if exact else f"{peak:.0f} MiB (process)"
    return spent, result, f"cpu {cpu:.2f} s  peak RSS {rss}"


def traced_peak(run: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    """tracemalloc's peak (MiB) of Python allocations during the call."""
    gc.collect()
    tracemalloc.start()
    try:
        asyncio.run(run())
        return tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()


def stored_bytes(store: LocalEvidenceStore, key: str) -> int:
    return sum(p.stat().st_size for p in (store.bundle_path(key) / "chunks").iterdir())


def check_bundle(store: LocalEvidenceStore, key: str, digest: str) -> None:
    """The bundle verifies offline, holds one file per chunk (nothing deduplicated), and its
    records, read back in order, are exactly the bytes the baseline hashed."""
    report = verify_bundle(store.bundle_path(key), store.public_key_path)
    assert report.ok, report.problems
    manifest = store.read_json(key)
    files = list((store.bundle_path(key) / "chunks").iterdir())
    assert len(files) == len(manifest["entries"]), "chunks were deduplicated: the stream repeats too early"
    h = hashlib.sha256()
    for entry in manifest["entries"]:
        path = store.bundle_path(key) / "chunks" / chunk_name(entry["sha256"], manifest["encoding"])
        h.update(decode_chunk(path.read_bytes(), manifest["encoding"], entry["size_bytes"]))
    assert h.hexdigest() == digest, f"{key}: sealed records differ from the hashed stream"


CEILING_MB = 64  # bytes of the stream each ceiling is measured over


def ceilings(stream: Stream, base: Path, store: LocalEvidenceStore) -> tuple[dict[str, float], str]:
    """What bounds each path on this machine, measured in this run over the stream's own bytes, as
    ratios to single-thread SHA-256 over the same bytes (measured just before): (ratios by path,
    a line for people). A path whose ceiling is below the target cannot reach it here."""
    from bench_seal_limits import chunk_pieces, durable_write_seconds, zstd_seconds

    from pausegate.evidence.chunker import SEAL_THREADS

    pieces = chunk_pieces(stream.iter_blocks(), CEILING_MB * MiB)
    mib = sum(map(len, pieces)) / MiB
    t = time.perf_counter()
    for piece in pieces:
        hashlib.sha256(piece).digest()
    sha_rate = mib / (time.perf_counter() - t)
    zstd = mib / zstd_seconds(pieces, min(SEAL_THREADS, os.cpu_count() or 1)) / sha_rate
    direct_s = durable_write_seconds(base, pieces, direct=True)
    buffered = mib / (durable_write_seconds(base, pieces, direct=False) or float("inf")) / sha_rate
    direct = mib / direct_s / sha_rate if direct_s else 0.0
    # the dicts path serialises every record on the event loop's thread, holding the GIL, so no
    # other thread can share that work: handing the records over and serialising each (orjson
    # alone, no checks) bounds it, and so does serialising them as the seal does (record_blocks:
    # orjson behind the checks that keep every line byte-identical to the reference encoder)
    async def serialise_only() -> None:
        dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
        async for record in stream.dicts():
            dumps(record, option=sort)

    async def serialise_as_sealed() -> None:
        async for _ in record_blocks(stream.dicts()):
            pass

    count, stream.count = stream.count, min(stream.count, len(stream.records))
    try:
        mib_records = stream.ends[stream.count - 1] / MiB
        t = time.perf_counter()
        asyncio.run(serialise_only())
        orjson_alone = mib_records / (time.perf_counter() - t) / sha_rate
        t = time.perf_counter()
        asyncio.run(serialise_as_sealed())
        serialise = mib_records / (time.perf_counter() - t) / sha_rate
    finally:
        stream.count = count

    async def one_record() -> AsyncIterator[RecordBlock]:
        yield RecordBlock(stream.pool[: stream.ends[0]], 1, stream.times[0], stream.times[0])

    fixed = []
    for n_ in range(4):  # the first starts the store's threads: not timed
        t = time.perf_counter()
        asyncio.run(store.seal_blocks(f"bench-fixed-{n_}/sealed", one_record()))
        fixed.append(time.perf_counter() - t)
    del fixed[0]
    fixed_ms = statistics.median(fixed) * 1000
    ratios = {"blocks": zstd, "plain": direct or buffered, "dicts": serialise}
    text = (
        f"ceilings:   ratios to sha256 over {mib:.0f} MiB of the same bytes, this run: "
        f"zstd {store.compression_level} on {min(SEAL_THREADS, os.cpu_count() or 1)} threads {zstd:.2f} (blocks); "
        f"O_DIRECT write + fsync {direct:.2f}, page-cache write + fsync {buffered:.2f} (plain); "
        f"serialising as sealed {serialise:.2f}, orjson alone {orjson_alone:.2f} (dicts: the records "
        f"iterated and serialised, with and without the byte-identity checks); fixed cost of a seal "
        f"{fixed_ms:.1f} ms (one record: chunk, manifest and head made durable)"
    )
    return ratios, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="MiB of records to seal (default 1024)")
    parser.add_argument("--end-to-end-mb", type=int, default=None, help="MiB for the dict run (default: --mb)")
    parser.add_argument("--rounds", type=int, default=3, help="baseline-then-seal rounds (default 3)")
    parser.add_argument("--chunk-mb", type=int, default=None, help="chunk size in MiB (default: the store's)")
    parser.add_argument("--pool-mb", type=int, default=POOL_BYTES // MiB, help="MiB of distinct records (default 96)")
    parser.add_argument("--fresh-blocks", action="store_true", help="cut every block anew as it is consumed")
    parser.add_argument("--trace-mb", type=int, default=256, help="MiB for the tracemalloc passes (0: skip)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir beside this script)"
    )
    args = parser.parse_args()
    parent = args.dir if args.dir is not None else Path(__file__).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=".bench-seal-", dir=parent))
    try:
        sizing = {} if args.chunk_mb is None else {"chunk_bytes": args.chunk_mb * MiB}
        store = LocalEvidenceStore(base / "evidence", base / "key.pem", **sizing)
        plain = LocalEvidenceStore(base / "evidence-plain", base / "key.pem", compression="none", **sizing)
        print(
            f"writing to {base} ({filesystem(base)}); {os.cpu_count()} CPUs; "
            f"chunk {store.chunk_bytes // MiB} MiB, block {BLOCK_BYTES // 1024} KiB, "
            f"zstd level {store.compression_level}"
        )

        pool = args.pool_mb * MiB + POOL_BYTES % MiB
        stream = Stream(args.mb * MiB, pool, fresh=args.fresh_blocks)
        mib = stream.size / MiB
        hash_s, digest = plain_sha256(stream)
        iter_s = iterate_only(stream)
        print(f"stream:     {mib:.0f} MiB, {stream.count} records of ~{stream.size // stream.count} bytes")
        print(f"  sha256    {hash_s:7.2f} s  {mib / hash_s:8.1f} MiB/s  (hashlib alone, same bytes)")
        print(f"  iterate   {iter_s:7.2f} s  {mib / iter_s:8.1f} MiB/s  (handing out the blocks, no sealing)")
        t = time.perf_counter()
        for rec in stream.records:
            canonical_line(rec)
        per_record = (time.perf_counter() - t) / len(stream.records) * 1e6
        print(f"  serialise {per_record:7.2f} µs per record  (canonical_line over the record pool)")
        limits, limits_text = ceilings(stream, base, store)
        print(limits_text)

        ratios: dict[str, list[float]] = {"blocks": [], "plain": []}
        for round_ in range(1, args.rounds + 1):
            for label, st in (("blocks", store), ("plain", plain)):
                hash_s, _ = plain_sha256(stream)
                sha_rate = mib / hash_s
                key = f"bench-{label}-{round_}/sealed"
                seal_s, (ref, chunks), rss = timed(partial(st.seal_blocks, key, stream.blocks()))
                assert ref.size_bytes == stream.size and ref.records == stream.count
                rate = mib / seal_s
                ratios[label].append(rate / sha_rate)
                shrink = stream.size / stored_bytes(st, key)
                print(
                    f"{label + ':':11s} round {round_}, seal_blocks, {chunks} chunks, "
                    f"stored {shrink:.1f}x smaller than the records"
                )
                print(f"  sha256    {hash_s:7.2f} s  {sha_rate:8.1f} MiB/s  (baseline of this round)")
                print(
                    f"  seal      {seal_s:7.2f} s  {rate:8.1f} MiB/s  ratio {rate / sha_rate:.2f} "
                    f"(ceiling {limits[label]:.2f})  {rss}"
                )
                check_bundle(st, key, digest)
                shutil.rmtree(st.bundle_path(key))  # a GiB per plain round: keep the disk free
        rows: list[tuple[str, float]] = [(label, statistics.median(r)) for label, r in ratios.items()]

        e2e = stream if args.end_to_end_mb in (None, args.mb) else Stream(args.end_to_end_mb * MiB, pool)
        hash2_s = plain_sha256(e2e)[0]
        mib2 = e2e.size / MiB
        e2e_s, (ref2, _), rss2 = timed(lambda: store.seal("bench-records/sealed", e2e.dicts()))
        assert ref2.size_bytes == e2e.size and ref2.records == e2e.count
        rate2 = mib2 / e2e_s
        rows.append(("dicts", rate2 / (mib2 / hash2_s)))
        print(f"end to end: seal from {e2e.count} dicts, {mib2:.0f} MiB")
        print(
            f"  seal      {e2e_s:7.2f} s  {rate2:8.1f} MiB/s  ratio {rows[-1][1]:.2f} "
            f"(ceiling {limits['dicts']:.2f})  {rss2}"
        )
        if e2e is stream:
            check_bundle(store, "bench-records/sealed", digest)
        print("verified:   every bundle verifies offline; the sealed records are the hashed bytes")

        if args.trace_mb:
            small = Stream(args.trace_mb * MiB, pool, fresh=args.fresh_blocks)
            iterate_only(small)  # the blocks are made before tracing, as for the timed runs
            peak_blocks = traced_peak(lambda: store.seal_blocks("bench-trace-blocks/sealed", small.blocks()))
            peak_dicts = traced_peak(lambda: store.seal("bench-trace-records/sealed", small.dicts()))
            print(
                f"tracemalloc peak (separate untimed {args.trace_mb} MiB passes, beyond the "
                f"{len(small.pool) / MiB:.0f} MiB pool): seal_blocks {peak_blocks:.1f} MiB, seal {peak_dicts:.1f} MiB"
            )
        whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RSS high-water mark of the whole run (the pool included): {whole:.0f} MiB")
        print(
            "summary: "
            + ", ".join(f"{label} {ratio:.2f}" for label, ratio in rows)
            + f" of plain sha256 throughput (target >= 0.7; blocks and plain: median of {args.rounds} rounds;"
            + " this machine's ceilings, same order: "
            + ", ".join(f"{limits[label]:.2f}" for label, _ in rows)
            + ")"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
