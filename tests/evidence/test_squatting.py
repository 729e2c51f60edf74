"""Names someone else wrote first, against both stores: the write moves to a fresh name derived from the
key and the signing key, the reference lists the plant, reads by the layout's key find the store's own,
and a retry finds the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.evidence.s3_store import S3EvidenceStore
from pausegate.evidence.squatting import alternate_key, is_alternate_of
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.models.evidence import EvidenceRef
from tests.support.s3_server import S3Server

from .conftest import aiter_of, make_records, new_store
from .test_anchoring import audit, failed, sealed_pause

PAUSE = "employee-telemetry/20261207T063000Z-5f2a"
PREFIX = "pausegate/"
FORGED = b'{"readers":[]}'


@dataclass
class StoreUnderTest:
    store: LocalEvidenceStore | S3EvidenceStore
    plant: Callable[[str, bytes], None]
    """Create a name (relative to the store's root or prefix) as anyone with write access could."""


@pytest.fixture(params=["local", "s3"])
def under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreUnderTest]:
    if request.param == "local":
        local = new_store(tmp_path, chunk_records=40)

        def plant_file(name: str, data: bytes) -> None:
            path = local.root.joinpath(*name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        yield StoreUnderTest(local, plant_file)
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.locked_bucket()
    s3 = S3EvidenceStore(server.settings(bucket, prefix=PREFIX), tmp_path / "keys" / "signing.pem", chunk_records=40)

    def plant_object(name: str, data: bytes) -> None:
        server.client().put_object(Bucket=bucket, Key=PREFIX + name, Body=data)

    try:
        yield StoreUnderTest(s3, plant_object)
    finally:
        s3.close()


def planted_names(ref: EvidenceRef) -> set[str]:
    return {p.name for p in ref.plants or ()}


class TestBothStores:
    def test_a_planted_document_moves_the_write_and_is_listed_never_read(self, under_test: StoreUnderTest) -> None:
        store, key = under_test.store, f"{PAUSE}/exposure/who-saw-what"
        under_test.plant(f"{key}.json", FORGED)
        under_test.plant(f"{key}.json.sig", b"{}")
        assert store.get(key) is None  # what was planted is not the store's
        ref = store.put_json(key, {"readers": ["mallory"]})
        assert is_alternate_of(ref.key, key) and ref.key != key
        assert {f"{key}.json", f"{key}.json.sig"} <= planted_names(ref)
        plant = next(p for p in ref.plants or () if p.name == f"{key}.json")
        assert (plant.kind, plant.size_bytes) == ("file", len(FORGED))
        # reads by the layout's key find the store's own; a retry of the write finds the same fresh name
        assert store.get(key) == ref
        assert store.read_json(key) == {"readers": ["mallory"]}
        assert store.read_json(key, ref.sha256) == {"readers": ["mallory"]}
        assert store.put_json(key, {"readers": ["mallory"]}) == ref

    async def test_a_planted_manifest_moves_the_seal_and_the_chain_goes_on_through_it(
        self, under_test: StoreUnderTest
    ) -> None:
        store, chain = under_test.store, f"{PAUSE}/audit/db-reads"
        for segment in (0, 1):
            under_test.plant(f"{chain}/{segment}.bundle/manifest.json", FORGED)
            under_test.plant(f"{chain}/{segment}.json", FORGED)
        first, _ = await store.seal(f"{chain}/0", aiter_of(make_records(30)))
        assert is_alternate_of(first.key, f"{chain}/0") and f"{chain}/0.bundle/manifest.json" in planted_names(first)
        assert len(list(store.iter_bundle(f"{chain}/0", first.sha256))) == 30
        again, _ = await store.seal(f"{chain}/0", aiter_of(make_records(1)))  # a retry: nothing resealed
        assert again == first
        second, _ = await store.seal(f"{chain}/1", aiter_of(make_records(5, offset=30)))
        manifest = store.read_json(second.key, second.sha256, version_id=second.version_id)
        assert manifest["previous"] == {"key": first.key, "manifest_sha256": first.sha256}

    async def test_a_manifest_planted_while_the_records_are_sealed_moves_the_bundle(
        self, under_test: StoreUnderTest
    ) -> None:
        store, key = under_test.store, f"{PAUSE}/audit/db-reads/0"

        async def records_while_someone_plants() -> AsyncIterator[dict[str, Any]]:
            for n, record in enumerate(make_records(50)):
                if n == 25:  # the name was free when sealing began
                    under_test.plant(f"{key}.bundle/manifest.json", FORGED)
                    under_test.plant(f"{key}.bundle/manifest.sig", b"{}")
                yield record

        ref, _ = await store.seal(key, records_while_someone_plants())
        assert is_alternate_of(ref.key, key) and ref.key != key
        assert f"{key}.bundle/manifest.json" in planted_names(ref)
        assert len(list(store.iter_bundle(key, ref.sha256))) == 50

    def test_a_write_to_a_free_name_takes_the_layout_key_and_lists_nothing(self, under_test: StoreUnderTest) -> None:
        ref = under_test.store.put_json(f"{PAUSE}/scope/telemetry", {"grants": 1})
        assert ref.key == f"{PAUSE}/scope/telemetry" and ref.plants is None
        assert "plants" not in ref.model_dump(mode="json")  # references keep the bytes they always had


class TestFreshNames:
    def test_only_the_signing_key_gives_the_fresh_name_and_one_key_always_the_same(self) -> None:
        ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        key = f"{PAUSE}/exposure/who-saw-what"
        assert alternate_key(ours, key, 3) == alternate_key(ours, key, 3) != alternate_key(theirs, key, 3)
        assert is_alternate_of(alternate_key(ours, key, 3), key)
        assert alternate_key(ours, key, 2).endswith("/who-saw-what")  # a directory moved, the name kept
        assert not is_alternate_of(f"{key}.short", key) and not is_alternate_of(f"{PAUSE}/other", key)


class TestLocalDirectories:
    def test_a_file_where_a_directory_belongs_moves_that_directory(self, store: LocalEvidenceStore) -> None:
        (store.root / PAUSE).mkdir(parents=True)
        (store.root / PAUSE / "scope").write_bytes(b"not a directory")
        ref = store.put_json(f"{PAUSE}/scope/telemetry", {"grants": 1})
        assert ref.key.startswith(f"{PAUSE}/scope.") and ref.key.endswith("/telemetry")
        assert planted_names(ref) == {f"{PAUSE}/scope"}
        assert store.read_json(f"{PAUSE}/scope/telemetry") == {"grants": 1}

    async def test_a_lock_the_store_cannot_open_moves_the_directory_and_a_junk_lock_is_only_reported(
        self, store: LocalEvidenceStore
    ) -> None:
        chain = store.root.joinpath(*PAUSE.split("/"), "audit", "db-reads")
        chain.mkdir(parents=True)
        (chain / ".chain.lock").mkdir()
        ref, _ = await store.seal(f"{PAUSE}/audit/db-reads/0", aiter_of(make_records(5)))
        assert ref.key.startswith(f"{PAUSE}/audit/db-reads.") and ref.key.endswith("/0")
        assert planted_names(ref) == {f"{PAUSE}/audit/db-reads/.chain.lock"}
        exposure = store.root.joinpath(*PAUSE.split("/"), "exposure")
        exposure.mkdir()
        (exposure / ".lock").write_bytes(b"junk")  # a lock works whatever it holds: nothing moves
        doc = store.put_json(f"{PAUSE}/exposure/who-saw-what", {"readers": []})
        assert doc.key == f"{PAUSE}/exposure/who-saw-what"
        assert planted_names(doc) == {f"{PAUSE}/exposure/.lock"}


class TestAuditOfPlants:
    async def test_a_recorded_plant_is_a_note_and_fails_once_changed_and_an_unrecorded_one_fails(
        self, store: LocalEvidenceStore
    ) -> None:
        pause = f"{PAUSE}-audit"
        planted = store.root.joinpath(*pause.split("/"), "scope")
        planted.mkdir(parents=True)
        (planted / "telemetry.json").write_bytes(FORGED)
        state = await sealed_pause(store, pause)  # its scope goes under a fresh name, the plant on its reference
        scope = state.containment.datasets[0].scope
        assert scope.key != f"{pause}/scope/telemetry" and planted_names(scope) == {f"{pause}/scope/telemetry.json"}
        lines = audit(store, state)
        assert not failed(lines), failed(lines)
        assert ("NOTE", f"{pause}/scope/telemetry.json") in [(s, f) for s, f, _ in lines]
        (planted / "telemetry.json").write_bytes(FORGED + b" ")  # someone is still writing there
        assert [f for f, m in failed(audit(store, state)) if "changed since the pause recorded it" in m] == [
            f"{pause}/scope/telemetry.json"]
        # the same plant, not recorded (a record from before it): a file the record does not name
        (planted / "telemetry.json").write_bytes(FORGED)
        unrecorded = state.model_copy(deep=True)
        unrecorded.containment.datasets[0] = unrecorded.containment.datasets[0].model_copy(
            update={"scope": scope.model_copy(update={"plants": None})})
        assert f"{pause}/scope/telemetry.json" in [f for f, _ in failed(audit(store, unrecorded))]
