"""Documents as objects in the bucket: the S3 store's ``documents.DocumentMedium``."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from pausegate.evidence import s3_squats
from pausegate.evidence.documents import StoredDocument
from pausegate.evidence.files import SIGNATURE_SUFFIX
from pausegate.evidence.s3_squats import BucketNames
from pausegate.evidence.s3_versions import JSON, put_signature
from pausegate.evidence.squatting import Squat


class DocumentObjects:
    """Documents as objects: ``<prefix><key>.json`` created once (``If-None-Match: *``), its signature
    beside it, a new version over an orphan (``documents.DocumentMedium``)."""

    def __init__(self, store: BucketNames) -> None:
        self._store = store

    def squat(self, key: str, data: bytes | None) -> Squat | None:
        store = self._store
        return store._io.call(s3_squats.document_squat(store, key))

    def writing(self, key: str) -> AbstractContextManager[None]:
        return nullcontext()  # the bucket refuses a second create of a name

    def stored(self, key: str) -> StoredDocument | None:
        store = self._store
        found = store._io.call(store.bucket.oldest(store._document(key)))
        return None if found is None else StoredDocument(*found)

    def put_signature(self, key: str, signature: bytes) -> None:
        store = self._store
        store._io.call(put_signature(store.bucket, store._document(key) + SIGNATURE_SUFFIX, signature))

    def keep_signature(self, key: str, signature: bytes) -> None:
        pass  # it was written before the document, and is locked

    def create(self, key: str, data: bytes) -> StoredDocument | None:
        store = self._store
        version = store._io.call(store.bucket.put_new(store._document(key), data, JSON))
        return None if version is None else StoredDocument(data, version)
