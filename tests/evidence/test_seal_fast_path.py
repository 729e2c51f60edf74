"""The fast sealing path must produce exactly the bytes and bundles of the reference one."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import itertools
import math
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pausegate.canonical import canonical_json
from pausegate.errors import EvidenceError, TargetUnavailableError
from pausegate.evidence.blocks import RecordBlock
from pausegate.evidence.bundle import chunk_name, decode_chunk
from pausegate.evidence.files import canonical_line, canonical_lines
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import verify_bundle

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(timezones=st.none() | st.timezones())
)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(), _json, max_size=8))
def test_canonical_line_equals_reference_encoder(record: dict[str, Any]) -> None:
    assert canonical_line(record) == canonical_json(record) + b"\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(), _json, max_size=8), max_size=12))
def test_canonical_lines_equal_the_reference_encoder_line_by_line(records: list[dict[str, Any]]) -> None:
    """A block serialised at once is each record's reference line, in order, whatever a record
    holds (floats, datetimes, integers beyond 64 bits send single records to the reference)."""
    assert canonical_lines(records) == b"".join(canonical_json(r) + b"\n" for r in records)


def test_canonical_lines_of_mixed_records_match_the_reference() -> None:
    from types import MappingProxyType

    records: list[Any] = [
        {"s": "é\u2028\x7f\x00\"\\😀\n", "objects": ["a", 1, None, True, ["x", {"y": [2]}]]},
        {"f": 1.5e-05, "objects": ["a", 0.1]},
        MappingProxyType({"b": 1, "a": [1, 2]}),
        {"n": 2**64},
        {"nested": {"b": {"a": [True, False, None]}}, "e": Label.A},
        {},
    ]
    assert canonical_lines(records) == b"".join(canonical_json(r) + b"\n" for r in records)
    assert canonical_lines([]) == b""


class Colour(enum.Enum):
    RED = 1.5e-7


class Label(enum.StrEnum):
    A = "a"


class Name(str):
    pass


@pytest.mark.parametrize(
    "record",
    [
        {"f": 1.5e-05, "g": 1e16, "h": -0.0},
        {"n": 2**64, "m": -(2**63) - 1},
        {"s": "é\u2028\x7f\x00\"\\😀", "é": 1, "Z": 2},
        {"at": datetime(2026, 1, 1, 1, 2, 3, 4500, tzinfo=timezone(timedelta(hours=5, seconds=3)))},
        {"at": datetime(2026, 1, 1, tzinfo=UTC), "d": [{"x": [1.25, None]}]},
        {"e": Colour.RED, "l": Label.A, Name("k"): Name("v")},
        {"t": (1, "a"), "nested": {"b": {"a": [True, False]}}},
    ],
)
def test_canonical_line_edge_cases(record: dict[str, Any]) -> None:
    assert canonical_line(record) == canonical_json(record) + b"\n"


@pytest.mark.parametrize("bad", [{"x": math.nan}, {"x": [math.inf]}, {"x": object()}, {1: 2, "a": 3}])
def test_canonical_line_rejects_what_the_reference_rejects(bad: dict[Any, Any]) -> None:
    with pytest.raises(EvidenceError):
        canonical_json(bad)
    with pytest.raises(EvidenceError):
        canonical_line(bad)


def _records(n: int) -> list[dict[str, Any]]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for i in range(n):
        rec: dict[str, Any] = {"at": (t0 + timedelta(seconds=i)).isoformat(), "i": i, "s": "é" * (i % 7)}
        if i % 5 == 0:
            rec["score"] = i / 3
        if i % 7 == 0:
            rec["at"] = t0 + timedelta(seconds=i)
        if i % 11 == 0:
            del rec["at"]
        out.append(rec)
    return out


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


Pair = tuple[bytes, str | None]
Expected = list[tuple[bytes, int, str | None, str | None]]
LIMITS = [(64, None), (1000, 7), (1 << 20, None), (300, 1), (5000, None)]


def _pairs(records: list[dict[str, Any]]) -> list[Pair]:
    """Each record's canonical line and time, one at a time: the reference the bulk path must match."""
    out: list[Pair] = []
    for r in records:
        at = r.get("at")
        out.append((canonical_json(r) + b"\n", at if at is None or isinstance(at, str) else at.isoformat()))
    return out


def _reference_chunks(pairs: list[Pair], chunk_bytes: int, chunk_records: int | None) -> Expected:
    expected: Expected = []
    cur: list[bytes] = []
    first = last = None
    for line, at in pairs:
        cur.append(line)
        if at is not None:
            first = first or at
            last = at
        if sum(map(len, cur)) >= chunk_bytes or len(cur) >= (chunk_records or 1 << 62):
            expected.append((b"".join(cur), len(cur), first, last))
            cur, first, last = [], None, None
    if cur:
        expected.append((b"".join(cur), len(cur), first, last))
    return expected


def _sealed_chunks(store: LocalEvidenceStore, key: str) -> Expected:
    """Each chunk's records, count and times, read back from disk with its digest checked."""
    manifest = store.read_json(key)
    got: Expected = []
    for e in manifest["entries"]:
        stored = (store.bundle_path(key) / "chunks" / chunk_name(e["sha256"], manifest["encoding"])).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == e["sha256"]
        records = decode_chunk(stored, manifest["encoding"], e["size_bytes"])
        got.append((records, e["records"], e["first_at"], e["last_at"]))
    assert [e["index"] for e in manifest["entries"]] == list(range(len(got)))
    return got


def _blocks(pairs: list[Pair], cuts: list[int]) -> list[RecordBlock]:
    blocks: list[RecordBlock] = []
    bounds = [0, *sorted(set(cuts)), len(pairs)]
    for a, b in itertools.pairwise(bounds):
        part = pairs[a:b]
        times = [at for _, at in part if at is not None]
        data = b"".join(line for line, _ in part)
        blocks.append(RecordBlock(data, len(part), times[0] if times else None, times[-1] if times else None))
    return blocks


@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("chunk_bytes,chunk_records", LIMITS)
def test_seal_matches_reference_chunking(
    tmp_path: Path, chunk_bytes: int, chunk_records: int | None, compression: Literal["zstd", "none"]
) -> None:
    """Chunks, counts and times are those the reference (one line at a time) gives, and the
    records read back are the records sealed."""
    records = _records(500)
    store = LocalEvidenceStore(
        tmp_path / "ev",
        tmp_path / "key.pem",
        chunk_bytes=chunk_bytes,
        chunk_records=chunk_records,
        compression=compression,
    )
    ref, chunks = asyncio.run(store.seal("p/records", _aiter(records)))
    expected = _reference_chunks(_pairs(records), chunk_bytes, chunk_records)
    assert _sealed_chunks(store, "p/records") == expected
    assert verify_bundle(store.bundle_path("p/records"), store.public_key_path).ok
    assert list(store.iter_bundle("p/records")) == [canonical_json_roundtrip(r) for r in records]
    assert chunks == len(expected)
    assert ref.records == len(records)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=30), limits=st.sampled_from(LIMITS))
def test_blocks_are_chunked_as_the_reference_however_they_are_cut(
    cuts: list[int], limits: tuple[int, int | None]
) -> None:
    """The bulk path: whether a producer hands over one record per block, everything in one
    block, or anything between, the chunks are the same."""
    chunk_bytes, chunk_records = limits
    pairs = _pairs(_records(200))
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalEvidenceStore(
            Path(tmp) / "ev", Path(tmp) / "key.pem", chunk_bytes=chunk_bytes, chunk_records=chunk_records
        )
        ref, chunks = asyncio.run(store.seal_blocks("p/blocks", _aiter(_blocks(pairs, cuts))))
        expected = _reference_chunks(pairs, chunk_bytes, chunk_records)
        assert _sealed_chunks(store, "p/blocks") == expected
        assert (ref.records, chunks) == (len(pairs), len(expected))
        assert verify_bundle(store.bundle_path("p/blocks"), store.public_key_path).ok


def canonical_json_roundtrip(record: dict[str, Any]) -> Any:
    import json

    return json.loads(canonical_json(record))


def test_failed_write_aborts_and_leaves_no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pausegate.evidence import chunker

    calls = 0
    real = chunker.write_stored

    def flaky(path: Path, buffer: Any, size: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        return real(path, buffer, size)

    monkeypatch.setattr(chunker, "write_stored", flaky)
    store = LocalEvidenceStore(tmp_path / "ev", tmp_path / "key.pem", chunk_bytes=64)
    # no room is a retryable error naming the key, not a bare OSError
    with pytest.raises(TargetUnavailableError, match="no room to write p/b"):
        asyncio.run(store.seal("p/b", _aiter(_records(200))))
    pause_dir = tmp_path / "ev" / "p"
    assert not store.bundle_path("p/b").exists()
    assert not list(pause_dir.glob(".b.bundle.tmp-*"))


def _open_fds() -> set[str]:
    paths: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    return paths


def test_every_chunk_is_fsynced_before_the_manifest_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsyncs run apart from the compressing threads; the manifest must still wait for all of them."""
    from pausegate.evidence import chunker, local_bundles

    synced: set[str] = set()
    real_sync, real_finalize = chunker.sync_and_close, local_bundles.finalize

    def recording_sync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        real_sync(fd)
        synced.add(path)

    def checking_finalize(**kwargs: Any) -> Any:
        on_disk = {str(p) for p in (kwargs["staging"] / "chunks").iterdir()}
        assert on_disk and on_disk == synced, "manifest written before every chunk was durable"
        return real_finalize(**kwargs)

    monkeypatch.setattr(chunker, "sync_and_close", recording_sync)
    monkeypatch.setattr(local_bundles, "finalize", checking_finalize)
    store = LocalEvidenceStore(tmp_path / "ev", tmp_path / "key.pem", chunk_bytes=256)
    _, chunks = asyncio.run(store.seal("p/b", _aiter(_records(300))))
    assert chunks == len(synced) > 10


def test_a_failed_seal_leaves_no_descriptor_open(tmp_path: Path) -> None:
    async def failing() -> AsyncIterator[dict[str, Any]]:
        for record in _records(300):
            yield record
        raise ConnectionError("source went away")

    store = LocalEvidenceStore(tmp_path / "ev", tmp_path / "key.pem", chunk_bytes=256)
    before = _open_fds()
    with pytest.raises(ConnectionError):
        asyncio.run(store.seal("p/b", failing()))
    assert not [p for p in _open_fds() - before if str(tmp_path) in p]
    assert not store.bundle_path("p/b").exists()


def test_chunks_finishing_out_of_order_keep_the_stream_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are sealed in parallel and collected as they finish; the first chunk is held
    back until the second is written, and the manifest must still list them as streamed."""
    import threading

    from pausegate.evidence import chunker

    second_written = threading.Event()
    finished: list[int] = []
    real = chunker.write_chunk

    def held_back(directory: Path, index: int, *args: Any) -> Any:
        if index == 0:
            assert second_written.wait(30), "the second chunk never ran beside the first"
        result = real(directory, index, *args)
        finished.append(index)
        if index == 1:
            second_written.set()
        return result

    monkeypatch.setattr(chunker, "write_chunk", held_back)
    records = _records(300)
    store = LocalEvidenceStore(tmp_path / "ev", tmp_path / "key.pem", chunk_bytes=256)
    _, chunks = asyncio.run(store.seal("p/b", _aiter(records)))
    assert finished.index(1) < finished.index(0)
    assert _sealed_chunks(store, "p/b") == _reference_chunks(_pairs(records), 256, None)
    assert chunks == len(finished) > 10
    assert verify_bundle(store.bundle_path("p/b"), store.public_key_path).ok


def _large_records(n: int) -> list[dict[str, Any]]:
    """Records of ~1.3 KiB: chunks of several copy-and-hash pieces, their length no multiple of a block."""
    return [{"at": f"2026-01-01T00:00:{i % 60:02d}+00:00", "i": i, "s": "x" * (1300 + i % 17)} for i in range(n)]


@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "refused"])
def test_chunk_files_hold_exactly_the_sealed_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: Literal["zstd", "none"], direct: bool
) -> None:
    """Written around the page cache (padded to a block, then truncated) or, where the filesystem
    refuses O_DIRECT, through it: each chunk file is the stored bytes, no more, and verifies."""
    from pausegate.evidence import direct as directmod

    refused: list[str] = []
    if not direct:
        real_open = os.open

        def refusing_open(path: Any, flags: int, *args: Any) -> int:
            if flags & directmod._O_DIRECT:
                refused.append(str(path))
                raise OSError(22, "Invalid argument")
            return real_open(path, flags, *args)

        monkeypatch.setattr(directmod.os, "open", refusing_open)
        monkeypatch.setattr(directmod, "_refused", set())
    records = _large_records(1500)
    store = LocalEvidenceStore(
        tmp_path / "ev", tmp_path / "key.pem", chunk_bytes=700_001, compression=compression
    )
    _, chunks = asyncio.run(store.seal("p/large", _aiter(records)))
    expected = _reference_chunks(_pairs(records), 700_001, None)
    assert _sealed_chunks(store, "p/large") == expected
    assert chunks == len(expected) > 2
    assert verify_bundle(store.bundle_path("p/large"), store.public_key_path).ok
    if not direct and directmod._O_DIRECT:
        assert len(refused) == 1  # asked once, then the filesystem is known to refuse


def test_a_bundle_is_published_only_once_everything_it_names_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The closing fsyncs run at once, but in their order: chunks, then the manifest, its signature,
    the staging directories and the new head's bytes, then the bundle's rename made durable, and
    only then the head naming it."""
    import threading

    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        real_fsync(fd)
        with lock:
            events.append(("fsync", path))

    def rename(src: Any, dst: Any) -> None:
        real_rename(src, dst)
        with lock:
            events.append(("rename", str(dst)))

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        with lock:
            events.append(("replace", str(dst)))

    store = LocalEvidenceStore(tmp_path / "ev", tmp_path / "key.pem", chunk_bytes=256)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    _, chunks = asyncio.run(store.seal("p/b", _aiter(_records(100))))
    final = store.bundle_path("p/b")
    pause_dir = str(final.parent)
    published = events.index(("rename", str(final)))
    head = events.index(("replace", str(final.parent / ".chain-head.json")))
    before = [path for kind, path in events[:published] if kind == "fsync"]
    staged = {Path(p).name for p in before}
    assert {"manifest.json", "manifest.sig", "chunks"} <= staged
    assert sum(p.endswith(".jsonl.zst") for p in before) == chunks
    assert any(".chain-head.json.tmp-" in Path(p).name for p in before)
    chunk_syncs = [i for i, (_, p) in enumerate(events) if p.endswith(".jsonl.zst")]
    manifest_sync = events.index(("fsync", _staged(before, "manifest.json")))
    assert max(chunk_syncs) < manifest_sync  # every chunk durable before the manifest is
    assert ("fsync", pause_dir) in events[published + 1 : head]
    assert events[head + 1 :] == [("fsync", pause_dir)]
    assert verify_bundle(final, store.public_key_path).ok


def _staged(paths: list[str], name: str) -> str:
    return next(p for p in paths if Path(p).name == name)
