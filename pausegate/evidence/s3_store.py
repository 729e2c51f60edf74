"""An S3-compatible bucket as the evidence store: one record for every worker host and the API,
kept write-once by the bucket (versioning, Object Lock in compliance mode) rather than by file modes
that a host's root can undo.

Objects are named as the local store names its files, under the configured prefix, so a copy of
the bucket is an evidence directory that ``pausegate evidence verify`` and ``audit`` read as they
are::

    <prefix><key>.json, <key>.json.sig              a document and its signature
    <prefix><key>.bundle/manifest.json, manifest.sig a bundle's manifest and signature
    <prefix><key>.bundle/chunks/<sha256>.jsonl.zst   its chunks
    <prefix><chain>/.chain-head.json                 the chain's signed head
    <prefix>evidence-signing-key.pub.pem             the public key

Documents, manifests, chunks and the public key are created with ``If-None-Match: *``: the server
refuses a second write of the name. Every object is written with a compliance-mode retention, so
no version can be deleted or shortened before it expires, by anyone. A ref records the version it
wrote (``EvidenceRef.version_id``) and reads fetch that version and check its digest; which
version is read otherwise is ``pausegate.evidence.s3_versions``'s to say. The rules a document write
and the chain of bundles follow are the local store's too (``documents``, ``chain``): this module
only stores and fetches. A document or manifest someone else created first under a name the store
writes moves the store's object to a fresh name, the plant listed on its reference (``s3_squats``).
The bucket's policy must let only the worker's principal write under the prefix (``s3_policy``).
Copies for offline verification: ``s3_download``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pausegate.errors import EvidenceError, TargetUnavailableError
from pausegate.evidence import s3_squats
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.blocks import BLOCK_BYTES, RecordBlock, record_blocks
from pausegate.evidence.bundle import (
    CHAIN_HEAD,
    CHUNKS,
    MANIFEST,
    SIGNATURE,
    BundleManifest,
    Encoding,
    ManifestEntry,
    chunk_name,
    decode_chunk,
    head_bytes,
    parse_manifest,
    signature_bytes,
)
from pausegate.evidence.chain import ChainListing, ChainTip, ListedBundle, build_manifest, chain_tip, parent_key
from pausegate.evidence.chunker import DEFAULT_CHUNK_BYTES, DEFAULT_ZSTD_LEVEL, Chunker, check_chunking
from pausegate.evidence.documents import canonical_object, document_data, write_document
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DIR_MODE,
    DOCUMENT_SUFFIX,
    SIGNATURE_SUFFIX,
    canonical_json,
    sha256_hex,
    validate_key,
)
from pausegate.evidence.s3_documents import DocumentObjects
from pausegate.evidence.s3_download import BucketCopy, Download
from pausegate.evidence.s3_objects import MAX_CONCURRENCY, Bucket, IoLoop
from pausegate.evidence.s3_policy import check_writers
from pausegate.evidence.s3_versions import (
    JSON,
    chunk_bytes,
    document_check,
    first_or_recorded,
    manifest_check,
    put_signature,
    vouching_signature,
)
from pausegate.evidence.squatting import Placement, Squat, place, with_plants
from pausegate.models.evidence import URI_SCHEME, EvidenceRef, PlantedObject

if TYPE_CHECKING:
    from pausegate.config import S3EvidenceSettings

log = structlog.get_logger(__name__)


class S3EvidenceStore:
    """Write-once evidence in an S3 bucket with Object Lock, signed with the deployment's Ed25519 key.

    Args:
        settings: the bucket, prefix, endpoint, credentials (or the standard AWS chain) and retention.
        signing_key_path: the Ed25519 private key (PEM), kept on the worker, never in the bucket.
            None: read only, verifying with the public key in the bucket (whose fingerprint must be
            ``expected_fingerprint`` if given).
        chunk_bytes, chunk_records, compression, compression_level, expected_fingerprint: as for
            ``LocalEvidenceStore``.
    """

    def __init__(
        self,
        settings: S3EvidenceSettings,
        signing_key_path: Path | str | None,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        chunk_records: int | None = None,
        compression: Literal["zstd", "none"] = "zstd",
        compression_level: int = DEFAULT_ZSTD_LEVEL,
        expected_fingerprint: str | None = None,
    ) -> None:
        check_chunking(chunk_bytes, chunk_records, compression)
        prefix = settings.prefix
        if prefix and (not prefix.endswith("/") or prefix.startswith("/")):
            raise EvidenceError(f"evidence.s3.prefix {prefix!r} must end in '/' and not start with one")
        if prefix:
            validate_key(prefix.rstrip("/"))
        self.prefix = prefix
        self.encoding: Encoding = "jsonl+zstd" if compression == "zstd" else "jsonl"
        self.compression_level = compression_level
        self.chunk_bytes = chunk_bytes
        self.chunk_records = chunk_records
        self.signing_key_path = Path(signing_key_path) if signing_key_path is not None else None
        self._key = keymod.load_or_create_signing_key(self.signing_key_path) if self.signing_key_path else None
        self._public = self._key.public_key() if self._key is not None else None
        self._expected_fingerprint = expected_fingerprint
        if self._key is not None and expected_fingerprint not in (None, self.signing_key_sha256):
            raise EvidenceError(
                f"signing key {self.signing_key_path} has fingerprint {self.signing_key_sha256}, "
                f"not the pinned {expected_fingerprint}: evidence would be signed by a key verifiers refuse"
            )
        self._io = IoLoop(f"evidence-s3-{settings.bucket}")
        self.bucket = Bucket(settings, self._io)
        self._writers_checked = False
        # a store that writes opens only on a bucket where nobody else can write its names; a bucket out
        # of reach now is checked again before the first write, which the activity retries
        if self._key is not None:
            try:
                self._io.call(self._check_writers())
            except TargetUnavailableError:
                pass
            except BaseException:
                _shut(self._io, self.bucket)
                raise
        self._ready = False
        self._chain_locks: dict[str, asyncio.Lock] = {}
        self._documents = DocumentObjects(self)
        # a store nobody closes (the API's, a command's) still closes its connections when it goes
        self._closer = weakref.finalize(self, _shut, self._io, self.bucket)

    def close(self) -> None:
        """Close the client and stop the store's loop thread."""
        self._closer()

    async def aclose(self) -> None:
        await asyncio.to_thread(self._closer)

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The deployment's key, for other records the deployment vouches for (the API's refusal log)."""
        if self._key is None:
            raise EvidenceError("the evidence store was opened read-only, without the signing key")
        return self._key

    @property
    def signing_key_sha256(self) -> str:
        """Fingerprint of the public key evidence verifies with."""
        public = self._public if self._public is not None else self._io.call(self._public_key())
        return keymod.fingerprint(public)

    async def _public_key(self) -> Ed25519PublicKey:
        """The signing key's public half; read-only, the one in the bucket (checked against the pin)."""
        if self._public is None:
            name = self.prefix + keymod.PUBLIC_KEY_FILENAME
            found = await self.bucket.oldest(name)
            if found is None:
                raise EvidenceError(f"{self.bucket.url(name)} is missing: nothing to verify the evidence with")
            public = keymod.public_key_from_pem(found[0])
            if self._expected_fingerprint is not None and keymod.fingerprint(public) != self._expected_fingerprint:
                raise EvidenceError(
                    f"{self.bucket.url(name)} has fingerprint {keymod.fingerprint(public)}, not the pinned "
                    f"{self._expected_fingerprint}"
                )
            self._public = public
        return self._public

    @property
    def location(self) -> str:
        """Where the evidence lies, for people (``s3://bucket/prefix``)."""
        return self.bucket.url(self.prefix)

    @staticmethod
    def uri(key: str) -> str:
        return f"{URI_SCHEME}{key}"

    # ------------------------------------------------------------ names

    def _name(self, key: str, suffix: str = "") -> str:
        return self.prefix + "/".join(validate_key(key)) + suffix

    def _document(self, key: str) -> str:
        return self._name(key, DOCUMENT_SUFFIX)

    def _manifest(self, key: str) -> str:
        return self._name(key, f"{BUNDLE_SUFFIX}/{MANIFEST}")

    def _bundle_file(self, key: str, name: str) -> str:
        return self._name(key, f"{BUNDLE_SUFFIX}/{name}")

    def _head(self, chain_key: str) -> str:
        return self._name(chain_key, f"/{CHAIN_HEAD}") if chain_key else self.prefix + CHAIN_HEAD

    # ------------------------------------------------------------ readiness

    async def _prepare(self) -> None:
        """Before the first write: the bucket must lock what it is given, and hold this deployment's
        public key (or none yet): two deployments signing into one prefix would be indistinguishable."""
        if self._ready:
            return
        await self.bucket.check_locked()
        await self._check_writers()
        name = self.prefix + keymod.PUBLIC_KEY_FILENAME
        pem = keymod.public_pem(self.signing_key.public_key())
        if await self.bucket.put_new(name, pem, "application/x-pem-file") is None:
            existing = await self.bucket.oldest(name)
            if existing is None or existing[0] != pem:
                raise EvidenceError(f"{self.bucket.url(name)} holds a different public key than the signing key")
        self._ready = True

    async def _check_writers(self) -> None:
        if not self._writers_checked:
            await check_writers(self.bucket, self.prefix, self.bucket.settings.writer_principal)
            self._writers_checked = True

    # ------------------------------------------------------------ signatures

    async def _signature(self, name: str, data: bytes, key: str | None = None) -> tuple[bytes | None, str | None]:
        """The version of the signature ``name`` that vouches for ``data`` (a manifest, or with ``key``
        the document under ``key``), else (the newest, why it does not vouch)."""
        public_key = await self._public_key()
        check = manifest_check(public_key, data) if key is None else document_check(public_key, key, data)
        return await vouching_signature(self.bucket, name, check)

    # ------------------------------------------------------------ documents

    def put_json(self, key: str, document: Mapping[str, Any] | list[Any]) -> EvidenceRef:
        """Store ``document`` as canonical JSON under ``key``, once: the same content again returns
        the ref of what is stored; different content raises ``EvidenceError``."""
        data, records = document_data(document)
        self._io.call(self._prepare())
        return write_document(self._documents, self.signing_key, key, data, records)

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object its writer already encoded as canonical JSON (a document too large to
        build as Python values first: a company's exposure scope). Same rules as ``put_json``."""
        data = canonical_object(key, data)
        self._io.call(self._prepare())
        return write_document(self._documents, self.signing_key, key, data, 1)

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what is stored under ``key`` (document or completely sealed bundle)."""
        return self._io.call(self._get(key))

    async def _get(self, key: str, plants: tuple[PlantedObject, ...] = ()) -> EvidenceRef | None:
        found = await self.bucket.oldest(self._document(key))
        if found is not None and await s3_squats.document_is_own(self, key, found[0]):
            data, version = found
            doc = _parse(key, data)
            records = len(doc) if isinstance(doc, list) else 1
            ref = EvidenceRef(
                uri=self.uri(key), sha256=sha256_hex(data), records=records, size_bytes=len(data), version_id=version
            )
            return with_plants(ref, plants)
        try:
            bundle = await self._bundle_ref(key)
        except EvidenceError:  # a manifest the store did not sign is not the store's
            bundle = None
        if bundle is not None:
            return with_plants(bundle[0], plants)
        if not plants:  # nothing of the store's under the key: under the fresh name a plant made it take?
            placement = await s3_squats.resolve(self, key)
            if placement.key != key:
                return await self._get(placement.key, placement.plants)
        return None

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        """The document under ``key`` (a bundle's key gives its manifest): ``version_id`` if given
        (what the ref recorded), else the first version; checked against ``expected_sha256`` and
        against its signature for this key. ``EvidenceError`` naming the key otherwise."""
        return self._io.call(self._read_resolved(key, expected_sha256, version_id))

    async def _read_resolved(self, key: str, expected_sha256: str | None, version_id: str | None) -> Any:
        """``_read_json``, under the fresh name the store wrote ``key``'s evidence at if something
        planted under ``key`` is not it."""
        try:
            return await self._read_json(key, expected_sha256, version_id)
        except EvidenceError:
            fresh = (await s3_squats.resolve(self, key)).key
            if fresh == key:
                raise
        return await self._read_json(fresh, expected_sha256, version_id)

    async def _read_json(self, key: str, expected_sha256: str | None, version_id: str | None) -> Any:
        name = self._document(key)
        document = True
        data = await first_or_recorded(self.bucket, name, version_id)
        if data is None:
            document = False
            name = self._manifest(key)
            data = await first_or_recorded(self.bucket, name, version_id)
            if data is None:
                where = f" (version {version_id})" if version_id else ""
                raise EvidenceError(f"no evidence under key {key!r}{where}")
        if expected_sha256 is not None and (digest := sha256_hex(data)) != expected_sha256:
            raise EvidenceError(
                f"evidence under key {key!r} is not the one its pause recorded: sha256 {digest}, "
                f"recorded {expected_sha256}"
            )
        if document:
            _, why = await self._signature(name + SIGNATURE_SUFFIX, data, key)
        else:
            _, why = await self._signature(self._bundle_file(key, SIGNATURE), data)
        if why is not None:
            raise EvidenceError(f"evidence under key {key!r} does not match its signature: {why}")
        parsed = _parse(key, data)
        if not document and (not isinstance(parsed, dict) or parsed.get("key") != key):
            raise EvidenceError(f"the manifest under key {key!r} is for another key (copied from elsewhere)")
        return parsed

    # ------------------------------------------------------------ bundles

    async def seal(self, key: str, records: AsyncIterator[Mapping[str, Any]]) -> tuple[EvidenceRef, int]:
        """Stream ``records`` into a sealed bundle under ``key``; (ref to the manifest, chunk count).
        If ``key`` is already sealed (an activity retry), its ref is returned and ``records`` is not read."""
        blocks = record_blocks(
            records, block_bytes=min(BLOCK_BYTES, self.chunk_bytes), block_records=self.chunk_records
        )
        return await self._seal(key, records, blocks)

    async def seal_blocks(self, key: str, blocks: AsyncIterator[RecordBlock]) -> tuple[EvidenceRef, int]:
        """``seal`` for records already serialised as canonical JSON lines, in blocks."""
        return await self._seal(key, blocks, blocks)

    async def _seal(
        self, key: str, source: AsyncIterator[Any], blocks: AsyncIterator[RecordBlock]
    ) -> tuple[EvidenceRef, int]:
        await self._io.acall(self._prepare())
        layout_key = key
        placement = await self._bundle_placement(layout_key)
        key = placement.key
        existing = await self._io.acall(self._bundle_ref(key))
        if existing is not None:
            await _close(source)
            await self._io.acall(self._catch_up_head(parent_key(key)))
            log.info("evidence_bundle_exists", key=key, manifest_sha256=existing[0].sha256)
            return with_plants(existing[0], placement.plants), existing[1]
        # chunks are made exactly as the local store makes them, in a private staging directory
        staging = Path(tempfile.mkdtemp(prefix="pausegate-seal-"))
        try:
            (staging / CHUNKS).mkdir(mode=DIR_MODE)
            chunker = Chunker(
                staging / CHUNKS,
                chunk_bytes=self.chunk_bytes,
                chunk_records=self.chunk_records,
                encoding=self.encoding,
                level=self.compression_level,
            )
            try:
                await chunker.consume(blocks)
                entries = await chunker.close()
            except BaseException:
                await chunker.abort()
                raise
            try:
                ref, chunks = await self._io.acall(self._publish(key, parent_key(key), staging, entries))
            except EvidenceError:
                # a manifest planted while the records were sealed is a squat like any other: looked at
                # again, it moves the bundle (its chunks are still staged)
                again = await self._bundle_placement(layout_key)
                if again.key == key:
                    raise
                placement, key = again, again.key
                ref, chunks = await self._io.acall(self._publish(key, parent_key(key), staging, entries))
            return with_plants(ref, placement.plants), chunks
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def _bundle_placement(self, key: str) -> Placement:
        return place(key, await self._io.acall(s3_squats.bundle_squat(self, key)), self.signing_key, self._bundle_squat)

    def _bundle_squat(self, key: str) -> Squat | None:
        """What blocks sealing ``key`` (looked at for a fresh name only, after a squat: rare, so waiting is fine)."""
        return self._io.call(s3_squats.bundle_squat(self, key))

    async def _bundle_ref(self, key: str) -> tuple[EvidenceRef, int] | None:
        found = await self.bucket.oldest(self._manifest(key))
        if found is None:
            return None
        data, version = found
        # the signature is written before the manifest: a manifest it does not vouch for was put
        # there by someone else, and must not be taken for this pause's bundle
        _, why = await self._signature(self._bundle_file(key, SIGNATURE), data)
        if why is not None:
            raise EvidenceError(
                f"bundle {key!r} has a manifest this deployment did not sign ({why}): not taken as sealed"
            )
        manifest = parse_manifest(data)
        if manifest.key != key:
            raise EvidenceError(f"the manifest under key {key!r} is for another key (copied from elsewhere)")
        ref = EvidenceRef(
            uri=self.uri(key),
            sha256=sha256_hex(data),
            records=manifest.records,
            size_bytes=manifest.size_bytes,
            version_id=version,
        )
        return ref, manifest.chunk_count

    async def _publish(
        self, key: str, pause: str, staging: Path, raw_entries: list[ManifestEntry]
    ) -> tuple[EvidenceRef, int]:
        """Upload the chunks, then chain, sign and create the manifest (its existence is what makes
        the bundle sealed), then move the chain's head."""
        chain_key = parent_key(key)
        # content-addressed, so uploading them twice (two attempts) is harmless: outside the lock
        await self._upload_chunks(key, staging / CHUNKS, raw_entries)
        async with self._chain_lock(chain_key):
            existing = await self._bundle_ref(key)
            if existing is not None:  # another attempt of the same activity finished first
                await self._move_head(chain_key)
                return existing
            tip = await self._chain_tip(chain_key)
            manifest = build_manifest(
                key=key,
                pause=pause,
                tip=tip,
                raw_entries=raw_entries,
                signing_key=self.signing_key,
                encoding=self.encoding,
            )
            data = canonical_json(manifest.model_dump(mode="json"))
            await put_signature(self.bucket, self._bundle_file(key, SIGNATURE), signature_bytes(self.signing_key, data))
            version = await self.bucket.put_new(self._manifest(key), data, JSON)
            if version is None:  # a concurrent attempt on another host created it first
                existing = await self._bundle_ref(key)
                assert existing is not None
                await self._move_head(chain_key)
                return existing
            digest = sha256_hex(data)
            await self._publish_head(chain_key, ChainTip(key, digest, manifest.chain_index))
        log.info(
            "evidence_bundle_sealed",
            key=key,
            manifest_sha256=digest,
            records=manifest.records,
            chunks=manifest.chunk_count,
            chain_index=manifest.chain_index,
            version_id=version,
        )
        ref = EvidenceRef(
            uri=self.uri(key),
            sha256=digest,
            records=manifest.records,
            size_bytes=manifest.size_bytes,
            version_id=version,
        )
        return ref, manifest.chunk_count

    async def _upload_chunks(self, key: str, directory: Path, entries: list[ManifestEntry]) -> None:
        limit = asyncio.Semaphore(MAX_CONCURRENCY)
        names = sorted({chunk_name(e.sha256, self.encoding) for e in entries})

        async def upload(file_name: str) -> None:
            async with limit:
                data = await asyncio.to_thread((directory / file_name).read_bytes)
                name = self._bundle_file(key, f"{CHUNKS}/{file_name}")
                if await self.bucket.put_new(name, data) is None and await chunk_bytes(self.bucket, name) is None:
                    # a name planted before sealing must not make the bundle unreadable: a chunk is
                    # known by its digest, so the genuine bytes are added as a version beside it
                    log.warning("evidence_chunk_version_added", object=name)
                    await self.bucket.put_version(name, data)

        await asyncio.gather(*(upload(n) for n in names))

    def iter_bundle(
        self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of a sealed bundle in sealing order: its manifest as ``read_json`` reads it,
        each chunk checked against the manifest as it is read."""
        key = self._io.call(s3_squats.resolve(self, key)).key
        manifest = BundleManifest.model_validate(self.read_json(key, expected_sha256, version_id=version_id))
        for entry in manifest.entries:
            name = self._bundle_file(key, f"{CHUNKS}/{chunk_name(entry.sha256, manifest.encoding)}")
            stored = self._io.call(chunk_bytes(self.bucket, name))
            if stored is None:
                raise EvidenceError(f"chunk {entry.index} ({name}) is missing, or no version matches its digest")
            try:
                data = decode_chunk(stored, manifest.encoding, entry.size_bytes)
            except EvidenceError as exc:
                raise EvidenceError(f"chunk {entry.index} ({name}): {exc}") from exc
            for line in data.splitlines():
                yield json.loads(line)

    # ------------------------------------------------------------ the chain of bundles

    async def _chain_listing(self, chain_key: str) -> ChainListing:
        """What lies where the chain ``chain_key`` lives, for ``chain.chain_tip``: each bundle's
        manifest as the store created it, with the version of its signature that vouches for it."""
        directory = self._name(chain_key) + "/" if chain_key else self.prefix
        bundles: list[ListedBundle] = []
        for sub in sorted(await self.bucket.subdirectories(directory)):
            name = sub[len(directory) : -1]
            if not name.endswith(BUNDLE_SUFFIX):
                continue
            found = await self.bucket.oldest(sub + MANIFEST)
            if found is None:
                continue
            signature, _ = await self._signature(sub + SIGNATURE, found[0])
            bundles.append(ListedBundle(name.removesuffix(BUNDLE_SUFFIX), found[0], signature, sub))
        return ChainListing(chain_key, bundles, await self.bucket.get(self._head(chain_key)))

    async def _chain_tip(self, chain_key: str) -> ChainTip | None:
        """The chain's latest bundle (``chain.chain_tip`` over what the bucket holds)."""
        return chain_tip(await self._chain_listing(chain_key), await self._public_key())

    async def _publish_head(self, chain_key: str, tip: ChainTip) -> None:
        data = head_bytes(self.signing_key, tip.key, tip.manifest_sha256, tip.chain_index)
        name = self._head(chain_key)
        if await self.bucket.get(name) != data:
            await self.bucket.put_version(name, data, JSON)

    async def _catch_up_head(self, chain_key: str) -> None:
        """A crash between creating a manifest and moving the head must not leave the head behind."""
        async with self._chain_lock(chain_key):
            await self._move_head(chain_key)

    async def _move_head(self, chain_key: str) -> None:
        """``_catch_up_head`` for a caller that holds the chain's lock."""
        tip = await self._chain_tip(chain_key)
        if tip is not None:
            await self._publish_head(chain_key, tip)

    def _chain_lock(self, chain_key: str) -> asyncio.Lock:
        """Serialises this store's appends to one chain (on the store's loop, where it is used)."""
        return self._chain_locks.setdefault(chain_key, asyncio.Lock())

    # ------------------------------------------------------------ copies for verification

    def download(self, key: str, directory: Path, *, recorded: Mapping[str, str] | None = None,
                 digests: Mapping[str, str] | None = None) -> Download:
        """Copy the evidence under ``key`` (a pause, a chain, a bundle or a document) into
        ``directory``, laid out as the local store lays it out, with the public key at its root.

        Of each document and manifest the version ``recorded`` names for its key (what the pause
        recorded) is written, else the first; of each signature and chunk the newest version that
        proves itself; of each chain head the signed one naming the latest bundle whose digest
        ``digests`` holds (what the pause recorded, by key), else the latest signed; of anything
        else (the store wrote it not), the newest, so that an audit of the copy reports it. The
        notes say where the bucket holds more than the store wrote (later versions, delete markers)."""
        return self._io.call(self._download(key, Path(directory), dict(recorded or {}), dict(digests or {})))

    async def _download(self, key: str, directory: Path, recorded: dict[str, str], digests: dict[str, str]) -> Download:
        try:
            public_key: Ed25519PublicKey | None = await self._public_key()
        except EvidenceError:  # no key to choose with (the bucket's is not the pinned one)
            public_key = None
        copy = BucketCopy(self.bucket, self.prefix, public_key, recorded, digests)
        return await copy.download(self._name(key), directory)


def _shut(io: IoLoop, bucket: Bucket) -> None:
    try:
        io.call(bucket.aclose())
    except Exception:  # the loop already stopped (interpreter exit): nothing left to close
        pass
    finally:
        io.close()


def _parse(key: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise EvidenceError(f"evidence under key {key!r} is not JSON: {exc}") from exc


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
