"""The chain rule: where the next bundle links, decided once (``chain.chain_tip``) from the listing
each store gives, and held by both stores alike (a local directory and an S3 bucket on moto)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.evidence.bundle import CHAIN_HEAD, ManifestEntry, head_bytes, signature_bytes
from pausegate.evidence.chain import ChainListing, ChainTip, ListedBundle, build_manifest, chain_tip
from pausegate.evidence.files import canonical_json, sha256_hex
from pausegate.evidence.s3_store import S3EvidenceStore
from pausegate.evidence.store import LocalEvidenceStore
from tests.support.s3_server import S3Server

from .conftest import aiter_of, make_records, new_store

CHAIN = "employee-telemetry/20261129T0630Z-ab12/audit/db-reads"
PREFIX = "pausegate/"
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


# ---------------------------------------------------------------- the rule, on listings made by hand


def sealed(name: str, after: ChainTip | None, key: Ed25519PrivateKey = KEY, chain: str = CHAIN) -> ListedBundle:
    """A bundle as a medium would list it: its manifest chained after ``after``, and its signature."""
    entry = ManifestEntry(index=0, sha256="ab" * 32, size_bytes=10, records=1, prev="0" * 64)
    manifest = build_manifest(
        key=f"{chain}/{name}", pause=chain, tip=after, raw_entries=[entry], signing_key=key, encoding="jsonl+zstd"
    )
    data = canonical_json(manifest.model_dump(mode="json"))
    return ListedBundle(name=name, manifest=data, signature=signature_bytes(key, data), where=name)


def tip_of(bundle: ListedBundle) -> ChainTip:
    assert bundle.manifest is not None
    manifest = json.loads(bundle.manifest)
    return ChainTip(manifest["key"], sha256_hex(bundle.manifest), manifest["chain_index"])


def head(tip: ChainTip, key: Ed25519PrivateKey = KEY) -> bytes:
    return head_bytes(key, tip.key, tip.manifest_sha256, tip.chain_index)


def rule(bundles: list[ListedBundle], head_data: bytes | None = None) -> ChainTip | None:
    return chain_tip(ChainListing(CHAIN, bundles, head_data), KEY.public_key())


class TestTheRule:
    def test_an_empty_chain_has_no_tip(self) -> None:
        assert rule([]) is None

    def test_the_bundles_are_followed_to_the_end_whatever_order_they_are_listed_in(self) -> None:
        a = sealed("0", None)
        b = sealed("1", tip_of(a))
        c = sealed("2", tip_of(b))
        assert rule([c, a, b]) == tip_of(c)

    def test_a_signed_head_is_a_hint_the_bundles_are_followed_from(self) -> None:
        a = sealed("0", None)
        b = sealed("1", tip_of(a))
        # the first bundle is gone: without the head the chain would seem to start over
        assert rule([b]) is None
        assert rule([b], head(tip_of(a))) == tip_of(b)

    def test_a_stale_signed_head_does_not_fork_the_chain(self) -> None:
        a = sealed("0", None)
        b = sealed("1", tip_of(a))
        assert rule([a, b], head(tip_of(a))) == tip_of(b)

    @pytest.mark.parametrize("forgery", ["another key", "altered", "unsigned", "not a head"])
    def test_a_head_whose_signature_fails_is_ignored(self, forgery: str) -> None:
        a = sealed("0", None)
        nowhere = ChainTip(f"{CHAIN}/9", "cd" * 32, 41)
        forged = {
            "another key": head(nowhere, OTHER_KEY),
            "altered": head(tip_of(a)).replace(b'"chain_index":0', b'"chain_index":41'),
            "unsigned": canonical_json({"key": nowhere.key, "manifest_sha256": nowhere.manifest_sha256,
                                        "chain_index": nowhere.chain_index}),
            "not a head": b"{}",
        }[forgery]
        assert rule([a], forged) == tip_of(a)
        assert rule([], forged) is None

    def test_bundles_signed_by_another_key_or_named_for_another_place_are_not_followed(self) -> None:
        a = sealed("0", None)
        planted = sealed("1", tip_of(a), key=OTHER_KEY)
        copied = sealed("1", tip_of(a), chain="other-program/20261129T0630Z-cd34/audit/db-reads")
        unsigned = ListedBundle("1", sealed("1", tip_of(a)).manifest, None, "1")
        unreadable = ListedBundle("1", None, None, "1")
        for intruder in (planted, copied, unsigned, unreadable):
            assert rule([a, intruder]) == tip_of(a)

    def test_of_two_bundles_naming_one_predecessor_the_first_by_name_is_followed(self) -> None:
        a = sealed("0", None)
        first, second = sealed("1", tip_of(a)), sealed("2", tip_of(a))
        assert rule([a, second, first]) == tip_of(first)


# ---------------------------------------------------------------- both stores hold to it


@dataclass
class StoreUnderTest:
    store: LocalEvidenceStore | S3EvidenceStore
    plant_head: Callable[[bytes], None]
    """Write the chain's head file (object) as anyone with write access to the evidence could."""


@pytest.fixture(params=["local", "s3"])
def store_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreUnderTest]:
    if request.param == "local":
        local = new_store(tmp_path, chunk_records=40)
        head_path = local.root.joinpath(*CHAIN.split("/"), CHAIN_HEAD)
        yield StoreUnderTest(local, head_path.write_bytes)
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.locked_bucket()
    s3 = S3EvidenceStore(server.settings(bucket, prefix=PREFIX), tmp_path / "keys" / "signing.pem", chunk_records=40)

    def plant(data: bytes) -> None:
        server.client().put_object(Bucket=bucket, Key=f"{PREFIX}{CHAIN}/{CHAIN_HEAD}", Body=data)

    try:
        yield StoreUnderTest(s3, plant)
    finally:
        s3.close()


def manifest_of(store: LocalEvidenceStore | S3EvidenceStore, ref: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = store.read_json(ref.key, ref.sha256, version_id=ref.version_id)
    return manifest


class TestBothStores:
    @pytest.mark.parametrize("forgery", ["another key", "altered", "unsigned"])
    async def test_a_planted_head_whose_signature_fails_is_ignored(
        self, store_under_test: StoreUnderTest, forgery: str
    ) -> None:
        store = store_under_test.store
        a, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(5)))
        b, _ = await store.seal(f"{CHAIN}/1", aiter_of(make_records(5, offset=5)))
        # a head naming a bundle that does not exist, far along the chain: taken as the hint, the
        # next bundle would link to it and the chain would break at the next seal
        nowhere = ChainTip(f"{CHAIN}/9", "cd" * 32, 41)
        planted = {
            "another key": head(nowhere, OTHER_KEY),
            "altered": head_bytes(store.signing_key, b.key, b.sha256, 1).replace(
                b'"chain_index":1', b'"chain_index":41'
            ),
            "unsigned": canonical_json({"key": nowhere.key, "manifest_sha256": nowhere.manifest_sha256,
                                        "chain_index": nowhere.chain_index}),
        }[forgery]
        store_under_test.plant_head(planted)
        c, _ = await store.seal(f"{CHAIN}/2", aiter_of(make_records(5, offset=10)))
        manifest = manifest_of(store, c)
        assert manifest["previous"] == {"key": b.key, "manifest_sha256": b.sha256}
        assert manifest["chain_index"] == 2
        assert manifest_of(store, b)["previous"] == {"key": a.key, "manifest_sha256": a.sha256}

    async def test_a_stale_genuine_head_is_followed_to_the_newest_bundle(
        self, store_under_test: StoreUnderTest
    ) -> None:
        store = store_under_test.store
        a, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(5)))
        b, _ = await store.seal(f"{CHAIN}/1", aiter_of(make_records(5, offset=5)))
        store_under_test.plant_head(head_bytes(store.signing_key, a.key, a.sha256, 0))
        c, _ = await store.seal(f"{CHAIN}/2", aiter_of(make_records(5, offset=10)))
        assert manifest_of(store, c)["previous"] == {"key": b.key, "manifest_sha256": b.sha256}
