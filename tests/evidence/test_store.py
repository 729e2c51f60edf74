"""LocalEvidenceStore: write-once documents, sealing, retries after crashes, the pause chain."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from pausegate.errors import EvidenceError
from pausegate.evidence import bundle as bundlemod
from pausegate.evidence import local_bundles
from pausegate.evidence.chain import ChainTip
from pausegate.evidence.files import canonical_json
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import verify_bundle
from pausegate.models.evidence import EvidenceRef

from .conftest import PAUSE, aiter_of, make_records, new_store, rewrite_chunk


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestPutJson:
    def test_stores_canonical_json_and_returns_its_digest(self, store: LocalEvidenceStore) -> None:
        ref = store.put_json(f"{PAUSE}/scope", {"b": [1, 2], "a": "ü"})
        path = store.document_path(f"{PAUSE}/scope")
        assert path.read_bytes() == '{"a":"ü","b":[1,2]}'.encode()
        assert ref.uri == f"evidence://{PAUSE}/scope"
        assert ref.size_bytes == path.stat().st_size
        import hashlib

        assert ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    def test_same_content_again_returns_the_same_ref(self, store: LocalEvidenceStore) -> None:
        first = store.put_json("p/x", {"a": 1, "b": 2})
        again = store.put_json("p/x", {"b": 2, "a": 1})  # key order is not content
        assert again == first

    def test_different_content_under_an_existing_key_is_refused(self, store: LocalEvidenceStore) -> None:
        store.put_json("p/x", {"a": 1})
        with pytest.raises(EvidenceError, match="different content"):
            store.put_json("p/x", {"a": 2})
        assert store.read_json("p/x") == {"a": 1}

    def test_files_and_directories_are_owner_only(self, store: LocalEvidenceStore) -> None:
        store.put_json("p/q/x", [1, 2, 3])
        path = store.document_path("p/q/x")
        assert mode(path) == 0o600
        assert mode(path.with_name("x.json.sig")) == 0o600
        assert mode(path.parent) == 0o700
        assert mode(path.parent.parent) == 0o700
        assert mode(store.root) == 0o700
        assert mode(store.signing_key_path) == 0o600

    def test_list_documents_count_their_items_as_records(self, store: LocalEvidenceStore) -> None:
        assert store.put_json("p/list", [{"a": 1}, {"a": 2}]).records == 2

    @pytest.mark.parametrize(
        "key",
        ["../x", "p/../../x", "/etc/passwd", "p//x", "p/./x", ".hidden/x", "p/x.bundle", "", "p/x\n", "p\\x"],
    )
    def test_keys_that_escape_or_collide_are_rejected(self, store: LocalEvidenceStore, key: str) -> None:
        with pytest.raises(EvidenceError, match="invalid evidence key"):
            store.put_json(key, {"a": 1})

    def test_a_symlink_where_a_directory_belongs_is_a_plant_and_nothing_is_written_through_it(
        self, store: LocalEvidenceStore, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        os.symlink(outside, store.root / "p")
        ref = store.put_json("p/x", {"a": 1})
        assert list(outside.iterdir()) == []
        assert ref.key.startswith("p.") and ref.key.endswith("/x")
        assert ref.plants is not None and [(p.name, p.kind) for p in ref.plants] == [("p", "symlink")]
        assert store.read_json("p/x") == {"a": 1}

    def test_get_and_read_json(self, store: LocalEvidenceStore) -> None:
        assert store.get("p/none") is None
        ref = store.put_json("p/doc", {"a": 1})
        assert store.get("p/doc") == ref
        assert store.read_json("p/doc") == {"a": 1}

    def test_read_json_detects_an_altered_document(self, store: LocalEvidenceStore) -> None:
        store.put_json("p/doc", {"a": 1})
        path = store.document_path("p/doc")
        os.chmod(path, 0o600)
        path.write_bytes(b'{"a":2}')
        with pytest.raises(EvidenceError, match="signature"):
            store.read_json("p/doc")

    def test_missing_signature_after_a_crash_is_restored_by_the_retry(
        self, store: LocalEvidenceStore
    ) -> None:
        store.put_json("p/doc", {"a": 1})
        store.document_path("p/doc").with_name("doc.json.sig").unlink()
        store.put_json("p/doc", {"a": 1})
        assert store.read_json("p/doc") == {"a": 1}

    def test_a_crash_between_the_two_writes_leaves_a_document_the_retry_completes(
        self, store: LocalEvidenceStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed after the first file is written: the retry stores both, and readers never meet
        a document they cannot authenticate (the signature is the file written first)."""
        from pausegate.evidence import store as storemod

        real = storemod.publish_once
        writes = 0

        def crash_on_the_second_write(path: Path, data: bytes) -> bool:
            nonlocal writes
            writes += 1
            if writes == 2:
                raise KeyboardInterrupt  # the process dies here
            return real(path, data)

        monkeypatch.setattr(storemod, "publish_once", crash_on_the_second_write)
        with pytest.raises(KeyboardInterrupt):
            store.put_json("p/scope", {"grants": 3})
        assert store.get("p/scope") is None  # nothing a reader could trip over
        monkeypatch.setattr(storemod, "publish_once", real)
        store.put_json("p/scope", {"grants": 3})
        assert store.read_json("p/scope") == {"grants": 3}

    def test_an_orphan_signature_for_other_content_is_replaced(self, store: LocalEvidenceStore) -> None:
        store.put_json("p/doc", {"a": 1})
        orphan = store.document_path("p/doc").with_name("doc.json.sig").read_bytes()
        store.document_path("p/other").with_name("other.json.sig").write_bytes(orphan)
        store.put_json("p/other", {"b": 2})
        assert store.read_json("p/other") == {"b": 2}

    def test_a_document_key_cannot_also_be_a_bundle(self, store: LocalEvidenceStore) -> None:
        store.put_json("p/k", {"a": 1})
        with pytest.raises(EvidenceError, match="document"):
            asyncio.run(store.seal("p/k", aiter_of([])))


class TestSigningKey:
    def test_key_is_created_once_and_public_key_written_beside_the_evidence(self, tmp_path: Path) -> None:
        a = new_store(tmp_path)
        b = new_store(tmp_path)
        assert a.public_key_path.read_bytes() == b.public_key_path.read_bytes()
        assert a.public_key_path.parent == a.root
        assert b"PUBLIC KEY" in a.public_key_path.read_bytes()
        assert not a.signing_key_path.is_relative_to(a.root)

    def test_a_key_readable_by_others_is_refused(self, tmp_path: Path) -> None:
        store = new_store(tmp_path)
        os.chmod(store.signing_key_path, 0o644)
        with pytest.raises(EvidenceError, match="group or others"):
            new_store(tmp_path)


class TestSeal:
    async def test_round_trip_with_many_chunks(self, store: LocalEvidenceStore) -> None:
        records = make_records(1001)
        ref, chunks = await store.seal(f"{PAUSE}/db-reads", aiter_of(records))
        assert chunks == 26  # 40 records per chunk
        assert ref.records == 1001
        assert ref.uri == f"evidence://{PAUSE}/db-reads"
        report = verify_bundle(store.bundle_path(f"{PAUSE}/db-reads"), store.public_key_path)
        assert report.ok, report.problems
        assert (report.records, report.chunks, report.manifest_sha256) == (1001, 26, ref.sha256)
        manifest = store.read_json(f"{PAUSE}/db-reads")
        chunk_dir = store.bundle_path(f"{PAUSE}/db-reads") / "chunks"
        stored = [(chunk_dir / f"{entry['sha256']}.jsonl.zst").read_bytes() for entry in manifest["entries"]]
        assert [hashlib.sha256(data).hexdigest() for data in stored] == [e["sha256"] for e in manifest["entries"]]
        read_back = [
            json.loads(line) for data in stored for line in zstandard.ZstdDecompressor().decompress(data).splitlines()
        ]
        assert read_back == records
        assert manifest["first_at"] == records[0]["at"] and manifest["last_at"] == records[-1]["at"]
        assert store.get(f"{PAUSE}/db-reads") == ref

    async def test_bundle_files_are_owner_only(self, store: LocalEvidenceStore) -> None:
        await store.seal(f"{PAUSE}/x", aiter_of(make_records(100)))
        bundle = store.bundle_path(f"{PAUSE}/x")
        assert mode(bundle) == 0o700 and mode(bundle / "chunks") == 0o700
        files = [p for p in bundle.rglob("*") if p.is_file()]
        assert files and all(mode(p) == 0o600 for p in files)

    async def test_chunks_are_cut_by_size_too(self, tmp_path: Path) -> None:
        store = new_store(tmp_path, chunk_bytes=1000)
        _, chunks = await store.seal("p/x", aiter_of(make_records(100)))
        manifest = store.read_json("p/x")
        assert chunks == len(manifest["entries"]) > 5
        assert all(e["size_bytes"] < 1000 + 200 for e in manifest["entries"])

    async def test_empty_stream_seals_an_empty_bundle(self, store: LocalEvidenceStore) -> None:
        ref, chunks = await store.seal("p/empty", aiter_of([]))
        assert (ref.records, chunks) == (0, 0)
        assert verify_bundle(store.bundle_path("p/empty"), store.public_key_path).ok

    async def test_sealing_again_returns_the_existing_bundle_without_reading(
        self, store: LocalEvidenceStore
    ) -> None:
        ref, chunks = await store.seal("p/x", aiter_of(make_records(90)))
        consumed = 0

        async def counting() -> AsyncIterator[dict[str, Any]]:
            nonlocal consumed
            for r in make_records(5):
                consumed += 1
                yield r

        assert await store.seal("p/x", counting()) == (ref, chunks)
        assert consumed == 0

    async def test_a_crash_mid_stream_leaves_nothing_and_the_retry_seals(
        self, store: LocalEvidenceStore
    ) -> None:
        async def failing() -> AsyncIterator[dict[str, Any]]:
            for r in make_records(100):
                yield r
            raise ConnectionError("source went away")

        with pytest.raises(ConnectionError):
            await store.seal("p/x", failing())
        assert store.get("p/x") is None
        assert not list(store.bundle_path("p/x").parent.glob(".x.bundle.tmp-*"))
        ref, _ = await store.seal("p/x", aiter_of(make_records(100)))
        assert ref.records == 100

    async def test_debris_of_a_killed_process_is_cleaned_and_redone(self, store: LocalEvidenceStore) -> None:
        final = store.bundle_path("p/x")
        final.parent.mkdir(parents=True)
        # a killed worker leaves a staging directory with some chunks and no manifest...
        staging = final.parent / ".x.bundle.tmp-dead"
        (staging / "chunks").mkdir(parents=True)
        (staging / "chunks" / "partial.jsonl.zst").write_bytes(b'{"a":1}\n')
        # ...and (after a filesystem-level crash) a bundle directory without its manifest
        (final / "chunks").mkdir(parents=True)
        ref, _ = await store.seal("p/x", aiter_of(make_records(50)))
        assert ref.records == 50
        assert not staging.exists()
        assert verify_bundle(final, store.public_key_path).ok

    async def test_a_bundle_with_a_manifest_but_no_signature_is_not_overwritten(
        self, store: LocalEvidenceStore
    ) -> None:
        await store.seal("p/x", aiter_of(make_records(50)))
        (store.bundle_path("p/x") / "manifest.sig").unlink()
        # nothing vouches for it any more: sealing goes under a fresh name and lists what lies there
        ref, _ = await store.seal("p/x", aiter_of(make_records(50)))
        assert (store.bundle_path("p/x") / "manifest.json").exists()
        assert ref.key != "p/x" and ref.plants is not None
        assert "p/x.bundle/manifest.json" in {p.name for p in ref.plants}


class TestChain:
    async def test_bundles_of_one_pause_chain_in_sealing_order(self, store: LocalEvidenceStore) -> None:
        refs: list[EvidenceRef] = []
        for name in ("a", "b", "c"):
            ref, _ = await store.seal(f"{PAUSE}/{name}", aiter_of(make_records(10, tag=name)))
            refs.append(ref)
        manifests = [store.read_json(f"{PAUSE}/{n}") for n in ("a", "b", "c")]
        assert manifests[0]["previous"] is None
        assert manifests[1]["previous"] == {"key": f"{PAUSE}/a", "manifest_sha256": refs[0].sha256}
        assert manifests[2]["previous"] == {"key": f"{PAUSE}/b", "manifest_sha256": refs[1].sha256}
        assert manifests[1]["entries"][0]["prev"] == refs[0].sha256
        assert [m["chain_index"] for m in manifests] == [0, 1, 2]
        head = json.loads((store.bundle_path(f"{PAUSE}/c").parent / bundlemod.CHAIN_HEAD).read_bytes())
        assert head["manifest_sha256"] == refs[2].sha256
        report = verify_bundle(store.bundle_path(f"{PAUSE}/c"), store.public_key_path)
        assert report.ok and report.previous_bundles_checked == 2

    async def test_other_pauses_have_their_own_chain(self, store: LocalEvidenceStore) -> None:
        await store.seal("prog/pause-1/a", aiter_of(make_records(3)))
        await store.seal("prog/pause-2/a", aiter_of(make_records(3)))
        assert store.read_json("prog/pause-2/a")["previous"] is None

    async def test_concurrent_seals_of_one_pause_form_a_single_line(self, store: LocalEvidenceStore) -> None:
        names = [f"s{i}" for i in range(5)]
        await asyncio.gather(*(store.seal(f"{PAUSE}/{n}", aiter_of(make_records(120, tag=n))) for n in names))
        manifests = [store.read_json(f"{PAUSE}/{n}") for n in names]
        assert sorted(m["chain_index"] for m in manifests) == list(range(5))
        prevs = [m["previous"]["manifest_sha256"] for m in manifests if m["previous"]]
        assert len(set(prevs)) == 4  # no fork: every bundle but the first has a distinct predecessor
        assert all(verify_bundle(store.bundle_path(f"{PAUSE}/{n}"), store.public_key_path).ok for n in names)

    async def test_a_stale_head_file_does_not_fork_the_chain(self, store: LocalEvidenceStore) -> None:
        ref_a, _ = await store.seal(f"{PAUSE}/a", aiter_of(make_records(3)))
        head_path = store.bundle_path(f"{PAUSE}/a").parent / bundlemod.CHAIN_HEAD
        stale = head_path.read_bytes()
        ref_b, _ = await store.seal(f"{PAUSE}/b", aiter_of(make_records(3)))
        head_path.write_bytes(stale)  # as if the process died before updating the head
        await store.seal(f"{PAUSE}/c", aiter_of(make_records(3)))
        assert store.read_json(f"{PAUSE}/c")["previous"]["manifest_sha256"] == ref_b.sha256
        assert ref_a.sha256 != ref_b.sha256


class TestCompression:
    async def test_chunks_are_stored_compressed_and_read_back_exactly(self, store: LocalEvidenceStore) -> None:
        records = make_records(400)
        ref, _ = await store.seal(f"{PAUSE}/db-reads", aiter_of(records))
        manifest = store.read_json(f"{PAUSE}/db-reads")
        assert manifest["encoding"] == "jsonl+zstd"
        stored = sum(p.stat().st_size for p in (store.bundle_path(f"{PAUSE}/db-reads") / "chunks").iterdir())
        assert stored * 3 < ref.size_bytes  # audit records compress several times
        assert list(store.iter_bundle(f"{PAUSE}/db-reads")) == records

    async def test_uncompressed_store_writes_plain_json_lines(self, tmp_path: Path) -> None:
        store = new_store(tmp_path, compression="none")
        records = make_records(30)
        await store.seal("p/x", aiter_of(records))
        manifest = store.read_json("p/x")
        assert manifest["encoding"] == "jsonl"
        (chunk,) = (store.bundle_path("p/x") / "chunks").iterdir()
        assert chunk.name == f"{manifest['entries'][0]['sha256']}.jsonl"
        assert [json.loads(line) for line in chunk.read_bytes().splitlines()] == records
        assert verify_bundle(store.bundle_path("p/x"), store.public_key_path).ok

    def test_an_unknown_compression_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="compression must be"):
            new_store(tmp_path, compression="gzip")  # type: ignore[arg-type]

    async def test_a_signed_chunk_that_inflates_past_the_manifest_is_refused(self, store: LocalEvidenceStore) -> None:
        """A chunk whose frame claims another size fails both the reader and the verifier,
        even when the manifest naming it carries a valid signature."""
        await store.seal("p/x", aiter_of(make_records(10)))
        bundle = store.bundle_path("p/x")
        bomb = zstandard.ZstdCompressor(level=1).compress(b"\n" * (64 << 20))
        _resign_with_chunk(store, bundle, bomb)
        with pytest.raises(EvidenceError, match="inflates to more bytes"):
            list(store.iter_bundle("p/x"))
        report = verify_bundle(bundle, store.public_key_path)
        assert [p.message for p in report.problems] == [
            f"decompresses to more than the manifest's {_entry(bundle)['size_bytes']} bytes"
        ]

    async def test_a_signed_chunk_that_does_not_decompress_is_reported(self, store: LocalEvidenceStore) -> None:
        await store.seal("p/x", aiter_of(make_records(10)))
        bundle = store.bundle_path("p/x")
        _resign_with_chunk(store, bundle, b"not zstd at all")
        report = verify_bundle(bundle, store.public_key_path)
        assert len(report.problems) == 1 and "does not decompress" in report.problems[0].message
        assert report.problems[0].entry == 0
        with pytest.raises(EvidenceError, match="chunk 0"):
            list(store.iter_bundle("p/x"))


    async def test_a_chunk_changed_after_sealing_is_not_read(self, store: LocalEvidenceStore) -> None:
        """The store's reader checks each chunk's digest as it reads, as the CLI does."""
        await store.seal("p/x", aiter_of(make_records(10)))
        (chunk,) = (store.bundle_path("p/x") / "chunks").iterdir()
        rewrite_chunk(chunk, lambda records: records.replace(b"employee", b"employed", 1))
        with pytest.raises(EvidenceError, match=r"chunk 0 \(.*\) no longer matches its digest"):
            list(store.iter_bundle("p/x"))

def _entry(bundle: Path) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((bundle / "manifest.json").read_bytes())["entries"][0]
    return entry


def _resign_with_chunk(store: LocalEvidenceStore, bundle: Path, stored: bytes) -> None:
    """Replace the only chunk and re-sign the manifest with the store's own key: what a
    faulty sealer (not an attacker without the key) could produce."""
    manifest = bundlemod.parse_manifest((bundle / "manifest.json").read_bytes())
    (old,) = (bundle / "chunks").iterdir()
    old.unlink()
    digest = hashlib.sha256(stored).hexdigest()
    (bundle / "chunks" / f"{digest}.jsonl.zst").write_bytes(stored)
    entry = manifest.entries[0].model_copy(update={"sha256": digest})
    entries, head = bundlemod.chain_entries([entry], bundlemod.GENESIS)
    resealed = manifest.model_copy(update={"entries": entries, "head": head})
    data = canonical_json(resealed.model_dump(mode="json"))
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(bundlemod.signature_bytes(store._key, data))
    tip = ChainTip(resealed.key, hashlib.sha256(data).hexdigest(), resealed.chain_index)
    local_bundles.publish_head(bundle.parent, store._key, tip)  # as the sealer would have
