"""What lies at a key's names in the bucket, judged by the store's key (``squatting``).

A bucket has no directories, and the names written more than once (signatures, chain heads) take a
new version over anything put there first, which readers pass over (``s3_versions``). What can
block a write is a document or a manifest created under the name before the store created it: a
conditional create then fails, and with compliance retention that first version stays for years.
Its first version is the one judged: the store's own if the deployment's key signed it for the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import SIGNATURE, parse_manifest
from pausegate.evidence.files import SIGNATURE_SUFFIX, validate_key
from pausegate.evidence.squatting import Placement, Squat, alternate_key, object_plant
from pausegate.models.evidence import PlantedObject

if TYPE_CHECKING:
    from pausegate.evidence.s3_store import S3EvidenceStore


def _relative(store: S3EvidenceStore, name: str) -> str:
    return name.removeprefix(store.prefix)


async def document_is_own(store: S3EvidenceStore, key: str, data: bytes) -> bool:
    _, why = await store._signature(store._document(key) + SIGNATURE_SUFFIX, data, key)
    return why is None


async def manifest_is_own(store: S3EvidenceStore, key: str, data: bytes) -> bool:
    _, why = await store._signature(store._bundle_file(key, SIGNATURE), data)
    if why is not None:
        return False
    try:
        return parse_manifest(data).key == key
    except EvidenceError:
        return False


async def document_squat(store: S3EvidenceStore, key: str) -> Squat | None:
    """What blocks the document ``key`` (None: its names are free, or hold the store's own document).
    ``EvidenceError`` if the key holds a bundle the store sealed."""
    parts = validate_key(key)
    plants: list[PlantedObject] = []
    name = store._document(key)
    found = await store.bucket.oldest(name)
    if found is not None:
        if await document_is_own(store, key, found[0]):
            return None
        plants.append(object_plant(_relative(store, name), found[0]))
    manifest = store._manifest(key)
    found = await store.bucket.oldest(manifest)
    if found is not None:
        if await manifest_is_own(store, key, found[0]):
            raise EvidenceError(f"evidence key {key!r} already holds a sealed bundle")
        plants.append(object_plant(_relative(store, manifest), found[0]))
    return Squat(len(parts) - 1, tuple(plants)) if plants else None


async def bundle_squat(store: S3EvidenceStore, key: str) -> Squat | None:
    """What blocks sealing ``key`` (None: free, or the bundle the store sealed). ``EvidenceError`` if
    the key holds a document the store wrote."""
    parts = validate_key(key)
    plants: list[PlantedObject] = []
    manifest = store._manifest(key)
    found = await store.bucket.oldest(manifest)
    if found is not None:
        if await manifest_is_own(store, key, found[0]):
            return None
        plants.append(object_plant(_relative(store, manifest), found[0]))
    name = store._document(key)
    found = await store.bucket.oldest(name)
    if found is not None:
        if await document_is_own(store, key, found[0]):
            raise EvidenceError(f"evidence key {key!r} already holds a document")
        plants.append(object_plant(_relative(store, name), found[0]))
    return Squat(len(parts) - 1, tuple(plants)) if plants else None


async def holds_own(store: S3EvidenceStore, key: str) -> bool:
    """Whether ``key`` holds a document or a bundle manifest the store wrote for it."""
    found = await store.bucket.oldest(store._document(key))
    if found is not None and await document_is_own(store, key, found[0]):
        return True
    found = await store.bucket.oldest(store._manifest(key))
    return found is not None and await manifest_is_own(store, key, found[0])


async def resolve(store: S3EvidenceStore, key: str) -> Placement:
    """Where the store's object for ``key`` lies: the key, or the fresh name a plant made it take (with
    what was planted). A store opened without the signing key cannot compute fresh names: it reads
    them from the references that name them."""
    signing_key = store._key
    if signing_key is None or await holds_own(store, key):
        return Placement(key)
    try:
        squat = await document_squat(store, key) or await bundle_squat(store, key)
    except EvidenceError:
        return Placement(key)
    if squat is not None and squat.index is not None:
        fresh = alternate_key(signing_key, key, squat.index)
        if await holds_own(store, fresh):
            return Placement(fresh, squat.plants)
    return Placement(key)
