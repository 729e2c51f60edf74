"""Documents written as canonical JSON by the fast path (orjson) or by their writer are the very bytes
the reference encoder gives; a document already encoded is stored like any other."""

from __future__ import annotations

from typing import Any

import pytest

from pausegate.canonical import canonical_json
from pausegate.errors import EvidenceError
from pausegate.evidence.files import canonical_document
from pausegate.evidence.store import LocalEvidenceStore

from .conftest import PAUSE

DOCUMENTS: list[Any] = [
    {"b": 1, "a": [True, None, "x"], "c": {"z": "ünï\tcødé \"q\" \\ \u2028", "y": -3}},
    [{"k": "v"}, {"a": [1, 2, {"b": []}]}],
    {"float": 1.5e-05, "big": 2**70, "nested": {"f": 0.1}},  # outside the fast path: the reference decides
    {"": "", "ü": "é", "\u0000ctl": "\u001f"},
]


class TestCanonicalDocument:
    @pytest.mark.parametrize("document", DOCUMENTS)
    def test_gives_the_reference_encoders_bytes(self, document: Any) -> None:
        assert canonical_document(document) == canonical_json(document)


class TestPutCanonical:
    def test_an_encoded_document_gets_the_same_ref_as_put_json(self, store: LocalEvidenceStore) -> None:
        document = DOCUMENTS[0]
        ref = store.put_canonical(f"{PAUSE}/scope/a", canonical_json(document))
        assert ref.sha256 == store.put_json(f"{PAUSE}/scope/b", document).sha256
        assert store.read_json(f"{PAUSE}/scope/a", expected_sha256=ref.sha256) == document
        assert store.put_canonical(f"{PAUSE}/scope/a", canonical_json(document)) == ref

    def test_other_content_under_the_key_is_refused(self, store: LocalEvidenceStore) -> None:
        store.put_canonical(f"{PAUSE}/scope/a", canonical_json({"a": 1}))
        with pytest.raises(EvidenceError, match="different content"):
            store.put_canonical(f"{PAUSE}/scope/a", canonical_json({"a": 2}))

    def test_only_a_json_object_is_accepted(self, store: LocalEvidenceStore) -> None:
        with pytest.raises(EvidenceError, match="JSON object"):
            store.put_canonical(f"{PAUSE}/scope/a", b"[1,2]")
