"""The document write both stores share (``documents.write_document``), over a medium in memory: the
rules are the write's, the medium only stores and fetches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import document_signature_bytes
from pausegate.evidence.documents import StoredDocument, canonical_object, document_data, write_document
from pausegate.evidence.files import canonical_json, sha256_hex
from pausegate.evidence.squatting import Squat, alternate_key, document_vouched, object_plant

KEY = Ed25519PrivateKey.generate()


class Memory:
    """Documents and signatures in dictionaries, every write in order in ``writes``."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.signatures: dict[str, bytes] = {}
        self.bundles: set[str] = set()
        self.writes: list[str] = []

    def squat(self, key: str, data: bytes | None) -> Squat | None:
        if key in self.bundles:
            raise EvidenceError(f"evidence key {key!r} already holds a sealed bundle")
        stored = self.documents.get(key)
        if stored is None or stored == data or document_vouched(KEY.public_key(), key, stored,
                                                                self.signatures.get(key)):
            return None
        return Squat(len(key.split("/")) - 1, (object_plant(key + ".json", stored),))

    @contextmanager
    def writing(self, key: str) -> Iterator[None]:
        yield

    def stored(self, key: str) -> StoredDocument | None:
        return StoredDocument(self.documents[key], "v1") if key in self.documents else None

    def put_signature(self, key: str, signature: bytes) -> None:
        self.writes.append(f"signature {key}")
        self.signatures[key] = signature

    def keep_signature(self, key: str, signature: bytes) -> None:
        self.signatures.setdefault(key, signature)

    def create(self, key: str, data: bytes) -> StoredDocument | None:
        if key in self.documents:
            return None
        self.writes.append(f"document {key}")
        self.documents[key] = data
        return StoredDocument(data, "v1")


class TestWriteDocument:
    def test_the_canonical_bytes_are_stored_signed_for_their_key_signature_first(self) -> None:
        medium = Memory()
        data, records = document_data([{"b": 1, "a": 2}, {"c": 3}])
        ref = write_document(medium, KEY, "p/doc", data, records)
        assert medium.documents["p/doc"] == canonical_json([{"a": 2, "b": 1}, {"c": 3}])
        assert medium.signatures["p/doc"] == document_signature_bytes(KEY, "p/doc", data)
        assert medium.writes == ["signature p/doc", "document p/doc"]
        assert (ref.uri, ref.sha256, ref.records, ref.size_bytes, ref.version_id) == (
            "evidence://p/doc", sha256_hex(data), 2, len(data), "v1")

    def test_the_same_content_again_returns_the_same_ref_and_writes_nothing(self) -> None:
        medium = Memory()
        data, _ = document_data({"a": 1})
        first = write_document(medium, KEY, "p/doc", data, 1)
        assert write_document(medium, KEY, "p/doc", data, 1) == first
        assert medium.writes == ["signature p/doc", "document p/doc"]

    def test_a_missing_signature_beside_a_stored_document_is_added(self) -> None:
        medium = Memory()
        data, _ = document_data({"a": 1})
        medium.documents["p/doc"] = data  # stored before signatures were written first
        write_document(medium, KEY, "p/doc", data, 1)
        assert medium.signatures["p/doc"] == document_signature_bytes(KEY, "p/doc", data)

    def test_different_content_under_a_stored_key_is_refused(self) -> None:
        medium = Memory()
        write_document(medium, KEY, "p/doc", document_data({"a": 1})[0], 1)
        with pytest.raises(EvidenceError, match="already holds different content"):
            write_document(medium, KEY, "p/doc", document_data({"a": 2})[0], 1)

    def test_a_key_holding_a_bundle_is_refused_before_anything_is_written(self) -> None:
        medium = Memory()
        medium.bundles.add("p/audit/0")
        with pytest.raises(EvidenceError, match="already holds a sealed bundle"):
            write_document(medium, KEY, "p/audit/0", document_data({"a": 1})[0], 1)
        assert medium.writes == []

    def test_a_document_someone_else_wrote_first_moves_the_write_to_a_fresh_name_listing_it(self) -> None:
        medium = Memory()
        medium.documents["p/exposure/who-saw-what"] = b'{"readers":[]}'  # planted before the store wrote
        data, _ = document_data({"readers": ["mallory"]})
        ref = write_document(medium, KEY, "p/exposure/who-saw-what", data, 1)
        assert ref.key.startswith("p/exposure/who-saw-what.") and medium.documents[ref.key] == data
        assert ref.plants is not None and [(p.name, p.size_bytes, p.sha256) for p in ref.plants] == [
            ("p/exposure/who-saw-what.json", 14, sha256_hex(b'{"readers":[]}'))]
        assert medium.documents["p/exposure/who-saw-what"] == b'{"readers":[]}'  # kept: evidence of its own
        # a retry computes the same fresh name, and finds its own document there
        assert write_document(medium, KEY, "p/exposure/who-saw-what", data, 1) == ref
        # another key never gets that name: the token is the key's own
        other = write_document(medium, KEY, "q/exposure/who-saw-what", data, 1)
        assert other.key == "q/exposure/who-saw-what" and other.plants is None

    def test_a_document_planted_between_the_look_and_the_write_moves_the_write(self) -> None:
        class Watched(Memory):
            """Someone creates the name as soon as the store begins writing there."""

            def put_signature(self, key: str, signature: bytes) -> None:
                super().put_signature(key, signature)
                self.documents.setdefault("p/doc", b"{}")

        medium = Watched()
        data, _ = document_data({"a": 1})
        ref = write_document(medium, KEY, "p/doc", data, 1)
        assert ref.key.startswith("p/doc.") and medium.documents[ref.key] == data
        assert ref.plants is not None and [p.name for p in ref.plants] == ["p/doc.json"]

    def test_a_planted_fresh_name_means_the_signing_key_leaked(self) -> None:
        medium = Memory()
        data, _ = document_data({"a": 1})
        medium.documents["p/doc"] = b"{}"
        fresh = alternate_key(KEY, "p/doc", 1)
        medium.documents[fresh] = b"{}"
        with pytest.raises(EvidenceError, match="signing key may have leaked"):
            write_document(medium, KEY, "p/doc", data, 1)

    def test_a_canonical_document_must_be_an_object(self) -> None:
        assert canonical_object("p/doc", b'{"a":1}') == b'{"a":1}'
        with pytest.raises(EvidenceError, match="must be a JSON object"):
            canonical_object("p/doc", b"[1]")
