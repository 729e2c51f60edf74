"""What lies at a key's names in the bucket, judged by the store's key (``squatting``).

A bucket has no directories, and the names written more than once (signatures, chain heads) take a
new version over anything put there first, which readers pass over (``s3_versions``). What can
block a write is a document or a manifest created under the name before the store created it: a
conditional create then fails, and with compliance retention that first version stays for years.
Its first version is the one judged: the store's own if the deployment's key signed it for the key.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import MANIFEST, SIGNATURE, parse_manifest
from pausegate.evidence.files import BUNDLE_SUFFIX, SIGNATURE_SUFFIX, validate_key
from pausegate.evidence.s3_objects import Bucket, IoLoop
from pausegate.evidence.squatting import Placement, Squat, alternate_key, object_plant
from pausegate.models.evidence import MAX_PLANTS, PlantedObject


class BucketNames(Protocol):
    """What the squat checks read of the S3 store: its bucket, its names, its key and signature check.

    Declared here, not imported, so the store's modules and this one form no import circle."""

    prefix: str
    bucket: Bucket
    _io: IoLoop
    _key: Ed25519PrivateKey | None

    def _name(self, key: str, suffix: str = "") -> str: ...

    def _document(self, key: str) -> str: ...

    def _manifest(self, key: str) -> str: ...

    def _bundle_file(self, key: str, name: str) -> str: ...

    async def _signature(self, name: str, data: bytes, key: str | None = None) -> tuple[bytes | None, str | None]: ...


def _relative(store: BucketNames, name: str) -> str:
    return name.removeprefix(store.prefix)


async def document_is_own(store: BucketNames, key: str, data: bytes) -> bool:
    _, why = await store._signature(store._document(key) + SIGNATURE_SUFFIX, data, key)
    return why is None


async def manifest_is_own(store: BucketNames, key: str, data: bytes) -> bool:
    _, why = await store._signature(store._bundle_file(key, SIGNATURE), data)
    if why is not None:
        return False
    try:
        return parse_manifest(data).key == key
    except EvidenceError:
        return False


async def _plants_at(store: BucketNames, key: str) -> tuple[PlantedObject, ...]:
    """Everything at ``key``'s names (its document, signature and bundle), as a copy of the bucket holds
    it: a document or manifest at its first version (what blocked the store), anything else at its newest."""
    document, bundle = store._document(key), store._name(key, BUNDLE_SUFFIX + "/")
    listing = await store.bucket.listing(store._name(key))
    names = sorted(n for n in listing.versions
                   if n in (document, document + SIGNATURE_SUFFIX) or n.startswith(bundle))
    plants: list[PlantedObject] = []
    if any(n.startswith(bundle) for n in names):
        plants.append(PlantedObject(name=_relative(store, bundle.rstrip("/")), kind="directory"))
    for name in names[:MAX_PLANTS]:
        versions = listing.versions[name]
        first = name in (document, bundle + MANIFEST)
        data = await store.bucket.get(name, versions[-1] if first else versions[0])
        if data is not None:
            plants.append(object_plant(_relative(store, name), data))
    return tuple(plants[:MAX_PLANTS])


async def document_squat(store: BucketNames, key: str) -> Squat | None:
    """What blocks the document ``key`` (None: its names are free, or hold the store's own document).
    ``EvidenceError`` if the key holds a bundle the store sealed."""
    parts = validate_key(key)
    squatted = False
    found = await store.bucket.oldest(store._document(key))
    if found is not None:
        if await document_is_own(store, key, found[0]):
            return None
        squatted = True
    found = await store.bucket.oldest(store._manifest(key))
    if found is not None:
        if await manifest_is_own(store, key, found[0]):
            raise EvidenceError(f"evidence key {key!r} already holds a sealed bundle")
        squatted = True
    return Squat(len(parts) - 1, await _plants_at(store, key)) if squatted else None


async def bundle_squat(store: BucketNames, key: str) -> Squat | None:
    """What blocks sealing ``key`` (None: free, or the bundle the store sealed). ``EvidenceError`` if
    the key holds a document the store wrote."""
    parts = validate_key(key)
    squatted = False
    found = await store.bucket.oldest(store._manifest(key))
    if found is not None:
        if await manifest_is_own(store, key, found[0]):
            return None
        squatted = True
    found = await store.bucket.oldest(store._document(key))
    if found is not None:
        if await document_is_own(store, key, found[0]):
            raise EvidenceError(f"evidence key {key!r} already holds a document")
        squatted = True
    return Squat(len(parts) - 1, await _plants_at(store, key)) if squatted else None


async def holds_own(store: BucketNames, key: str) -> bool:
    """Whether ``key`` holds a document or a bundle manifest the store wrote for it."""
    found = await store.bucket.oldest(store._document(key))
    if found is not None and await document_is_own(store, key, found[0]):
        return True
    found = await store.bucket.oldest(store._manifest(key))
    return found is not None and await manifest_is_own(store, key, found[0])


async def resolve(store: BucketNames, key: str) -> Placement:
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
