"""Offline verification: every kind of tampering is detected, untouched bundles pass."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausegate.canonical import canonical_json
from pausegate.evidence.signing_keys import public_pem
from pausegate.evidence.verify import verify_bundle

from .conftest import SealedTree, aiter_of, new_store, rewrite_chunk

Mutation = Callable[[Path, Path], None]  # (bundle being verified, its predecessor)


def chunks_of(bundle: Path) -> list[Path]:
    return sorted((bundle / "chunks").iterdir())


def pick(items: list[Path], i: int) -> Path:
    return items[i % len(items)]


def flip_byte(path: Path, pos: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos % len(data)] ^= 1 << bit
    path.write_bytes(bytes(data))


def truncate(path: Path, keep_fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


def edit_manifest(bundle: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads((bundle / "manifest.json").read_bytes())
    change(doc)
    (bundle / "manifest.json").write_bytes(canonical_json(doc))


def swap_lines(path: Path, i: int) -> None:
    def swap(records: bytes) -> bytes:
        lines = records.splitlines(keepends=True)
        a = i % len(lines)
        b = (a + 1) % len(lines)
        lines[a], lines[b] = lines[b], lines[a]
        return b"".join(lines)

    rewrite_chunk(path, swap)


def recompress(path: Path, level: int) -> None:
    """The same records, stored with other compression settings (or compressed at all); the
    frame checksum the sealer never writes makes sure the stored bytes differ."""
    data = path.read_bytes()
    records = zstandard.ZstdDecompressor().decompress(data) if path.name.endswith(".zst") else data
    path.write_bytes(zstandard.ZstdCompressor(level=level, write_checksum=True).compress(records))


def swap_files(a: Path, b: Path) -> None:
    tmp = a.with_name("swap.tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


ints = st.integers(min_value=0, max_value=10_000)
bits = st.integers(min_value=0, max_value=7)
fractions = st.floats(min_value=0.0, max_value=0.999)


def _replace_dir(target: Path, source: Path) -> None:
    shutil.rmtree(target)
    shutil.copytree(source, target)


def _manifest_edits() -> st.SearchStrategy[Callable[[dict[str, Any]], None]]:
    def bump(field: str) -> Callable[[dict[str, Any]], None]:
        return lambda d: d.__setitem__(field, d[field] + 1)

    def drop_last(d: dict[str, Any]) -> None:
        d["entries"].pop()
        d["chunk_count"] -= 1

    return st.sampled_from(
        [
            bump("records"),
            bump("chain_index"),
            drop_last,
            lambda d: d["entries"].reverse(),
            lambda d: d.__setitem__("previous", None),
            lambda d: d["entries"][0].__setitem__("records", d["entries"][0]["records"] - 1),
            lambda d: d.__setitem__("sealed_at", "2020-01-01T00:00:00+00:00"),
        ]
    )


def mutations(tree: SealedTree) -> st.SearchStrategy[tuple[str, Mutation]]:
    m: list[st.SearchStrategy[tuple[str, Mutation]]] = [
        st.builds(
            lambda i, p, b: ("flip chunk byte", lambda bd, _: flip_byte(pick(chunks_of(bd), i), p, b)),
            ints,
            ints,
            bits,
        ),
        st.builds(lambda i: ("delete chunk", lambda bd, _: pick(chunks_of(bd), i).unlink()), ints),
        st.builds(
            lambda name, data, where: (
                "add file",
                lambda bd, _: (bd / where / name).write_bytes(data),
            ),
            st.one_of(
                st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda s: s + ".jsonl"),
                st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda s: s + ".jsonl.zst"),
                st.sampled_from(["extra.jsonl", "extra.jsonl.zst", "notes.txt", "manifest.json.bak"]),
            ),
            st.binary(max_size=64),
            st.sampled_from(["chunks", "."]),
        ),
        st.builds(
            lambda i, j: (
                "swap two chunk files",
                lambda bd, _: swap_files(pick(chunks_of(bd), i), pick(chunks_of(bd), i + 1 + j % 3)),
            ),
            ints,
            ints,
        ),
        st.builds(lambda i: ("reorder records", lambda bd, _: swap_lines(pick(chunks_of(bd), i), i)), ints),
        st.builds(
            lambda i, level: (
                "store a chunk's records differently",
                lambda bd, _: recompress(pick(chunks_of(bd), i), level),
            ),
            ints,
            st.sampled_from([-5, 3, 19]),
        ),
        st.builds(
            lambda i, f: ("truncate chunk", lambda bd, _: truncate(pick(chunks_of(bd), i), f)),
            ints,
            fractions,
        ),
        st.builds(
            lambda i, data: (
                "append to chunk",
                lambda bd, _: pick(chunks_of(bd), i).write_bytes(pick(chunks_of(bd), i).read_bytes() + data),
            ),
            ints,
            st.binary(min_size=1, max_size=64),
        ),
        st.builds(
            lambda i: (
                "rename chunk",
                lambda bd, _: (chunk := pick(chunks_of(bd), i)).rename(chunk.with_name("0" * 64 + chunk.name[64:])),
            ),
            ints,
        ),
        st.builds(
            lambda f: ("truncate manifest", lambda bd, _: truncate(bd / "manifest.json", f)), fractions
        ),
        st.builds(
            lambda p, b: ("flip manifest byte", lambda bd, _: flip_byte(bd / "manifest.json", p, b)),
            ints,
            bits,
        ),
        st.builds(lambda ch: ("edit manifest", lambda bd, _: edit_manifest(bd, ch)), _manifest_edits()),
        st.just(("delete manifest", lambda bd, _: (bd / "manifest.json").unlink())),
        st.just(("delete signature", lambda bd, _: (bd / "manifest.sig").unlink())),
        st.builds(
            lambda p, b: ("flip signature byte", lambda bd, _: flip_byte(bd / "manifest.sig", p, b)),
            ints,
            bits,
        ),
        st.just(
            (
                "substitute manifest of another bundle",
                lambda bd, prev: [
                    shutil.copy(prev / name, bd / name) for name in ("manifest.json", "manifest.sig")
                ].clear(),
            )
        ),
        st.just(
            (
                "substitute the bundle by a re-sealed one",
                lambda bd, _: _replace_dir(bd, tree.impostor_second),
            )
        ),
        st.builds(
            lambda p, b: (
                "edit previous bundle's manifest",
                lambda _, prev: flip_byte(prev / "manifest.json", p, b),
            ),
            ints,
            bits,
        ),
        st.just(("delete previous bundle", lambda _, prev: shutil.rmtree(prev))),
        st.just(
            (
                "replace previous bundle by a re-sealed one",
                lambda _, prev: _replace_dir(prev, tree.impostor_first),
            )
        ),
        st.just(("delete the whole bundle", lambda bd, _: shutil.rmtree(bd))),
    ]
    return st.one_of(*m)


class TestVerify:
    def test_untouched_bundles_pass(self, sealed_tree: SealedTree) -> None:
        pause = SealedTree.pause_dir(sealed_tree.root)
        # the key beside the evidence, trusted because its fingerprint is pinned
        first = verify_bundle(pause / sealed_tree.first, pinned={sealed_tree.fingerprint})
        second = verify_bundle(pause / sealed_tree.second / "manifest.json", pinned={sealed_tree.fingerprint})
        assert first.ok and second.ok, (first.problems, second.problems)
        assert (first.records, first.chunks, first.chain_index) == (230, 6, 0)
        assert (second.records, second.chunks, second.previous_bundles_checked) == (130, 4, 1)

    def test_wrong_key_is_detected(self, sealed_tree: SealedTree, tmp_path: Path) -> None:
        other = tmp_path / "other.pem"
        other.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
        report = verify_bundle(SealedTree.pause_dir(sealed_tree.root) / sealed_tree.second, other)
        assert not report.ok
        assert any("signature does not verify" in p.message for p in report.problems)

    def test_a_bundle_signed_with_another_key_is_detected(
        self, sealed_tree: SealedTree, tmp_path: Path
    ) -> None:
        forger = new_store(tmp_path / "forger")
        asyncio.run(forger.seal("employee-telemetry/20261129T0630Z/audit/db-reads", aiter_of([{"a": 1}])))
        copy = sealed_tree.copy(tmp_path / "copy")
        bundle = SealedTree.pause_dir(copy) / sealed_tree.first
        _replace_dir(bundle, forger.bundle_path("employee-telemetry/20261129T0630Z/audit/db-reads"))
        report = verify_bundle(bundle, pinned={sealed_tree.fingerprint})
        assert not report.ok
        assert report.problems[0].file.endswith("manifest.sig")

    def test_problems_name_the_file_and_entry(self, sealed_tree: SealedTree, tmp_path: Path) -> None:
        copy = sealed_tree.copy(tmp_path / "copy")
        bundle = SealedTree.pause_dir(copy) / sealed_tree.first
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        target = next((bundle / "chunks").glob(f"{manifest['entries'][2]['sha256']}.*"))
        flip_byte(target, 10, 0)
        report = verify_bundle(bundle, sealed_tree.public_key)
        assert [(p.file, p.entry) for p in report.problems] == [(f"db-reads.bundle/chunks/{target.name}", 2)]
        assert "modified" in report.problems[0].message

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def test_every_mutation_is_detected(self, sealed_tree: SealedTree, data: st.DataObject) -> None:
        name, mutate = data.draw(mutations(sealed_tree))
        with tempfile.TemporaryDirectory() as tmp:
            copy = sealed_tree.copy(Path(tmp) / "copy")
            pause = SealedTree.pause_dir(copy)
            bundle, previous = pause / sealed_tree.second, pause / sealed_tree.first
            assert verify_bundle(bundle, sealed_tree.public_key).ok  # no false alarm before the mutation
            mutate(bundle, previous)
            report = verify_bundle(bundle, sealed_tree.public_key)
            assert not report.ok, f"undetected: {name}"
            assert all(p.message for p in report.problems)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        records=st.lists(
            st.dictionaries(
                st.text(min_size=1, max_size=8),
                st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30)),
                max_size=5,
            ),
            max_size=60,
        ),
        chunk_records=st.integers(min_value=1, max_value=25),
    )
    def test_no_false_alarm_on_any_sealed_stream(
        self, tmp_path: Path, records: list[dict[str, Any]], chunk_records: int
    ) -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
            store = new_store(Path(tmp), chunk_records=chunk_records)
            ref, chunks = asyncio.run(store.seal("p/x", aiter_of(records)))
            report = verify_bundle(store.bundle_path("p/x"), store.public_key_path)
            assert report.ok, report.problems
            assert (report.records, report.chunks, report.manifest_sha256) == (
                len(records),
                chunks,
                ref.sha256,
            )
