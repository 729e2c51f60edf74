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
wrote (``EvidenceRef.version_id``) and reads fetch that version and check its digest; without one
they read the name's first version, which is what the conditional create wrote (a version someone
added later with access to the bucket is newer and is not read). Signatures, chunks and chain heads
prove themselves (a signature verifies, a chunk's digest is its name, a head is signed), so of
those the version that proves itself is read: a signature orphaned by a crashed attempt, or junk
put beside it, cannot make genuine evidence unreadable. Signatures and chain heads are the only
names written more than once, each time as a new, locked version.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pausegate.errors import EvidenceError
from pausegate.evidence import seal as sealmod
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DIR_MODE,
    DOCUMENT_SUFFIX,
    FILE_MODE,
    SIGNATURE_SUFFIX,
    canonical_json,
    sha256_hex,
    validate_key,
)
from pausegate.evidence.s3_objects import MAX_CONCURRENCY, Bucket, IoLoop
from pausegate.models.evidence import URI_SCHEME, EvidenceRef

if TYPE_CHECKING:
    from pausegate.config import EvidenceSettings, S3EvidenceSettings

log = structlog.get_logger(__name__)

JSON = "application/json"
# Versions of one name looked through for one that proves itself: the store writes a few at most
# (a signature per attempt, a head per bundle); thousands were put there to make readers slow.
MAX_VERSIONS_READ = 64
MANIFEST_SIGNATURE_STEM = sealmod.SIGNATURE.removesuffix(SIGNATURE_SUFFIX)  # "manifest"


def open_s3_store(settings: EvidenceSettings, *, read_only: bool = False) -> S3EvidenceStore:
    """The store ``settings`` (``store = "s3"``) configure; ``read_only``: without the signing key
    (a verifier's machine has none, and must not make one)."""
    from pausegate.evidence.store import default_signing_key_path

    if settings.s3 is None:
        raise EvidenceError("evidence.store is 's3' but [evidence.s3] is not configured")
    return S3EvidenceStore(
        settings.s3,
        None if read_only else settings.signing_key or default_signing_key_path(settings.directory),
        compression=settings.compression,
        compression_level=settings.compression_level,
        expected_fingerprint=settings.signing_key_fingerprint,
    )


@dataclass(frozen=True)
class Download:
    """What ``S3EvidenceStore.download`` wrote, and what it saw in the bucket that people should know."""

    directory: Path
    objects: int
    notes: list[str]


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
        chunk_bytes: int = sealmod.DEFAULT_CHUNK_BYTES,
        chunk_records: int | None = None,
        compression: Literal["zstd", "none"] = "zstd",
        compression_level: int = sealmod.DEFAULT_ZSTD_LEVEL,
        expected_fingerprint: str | None = None,
    ) -> None:
        sealmod.check_chunking(chunk_bytes, chunk_records, compression)
        prefix = settings.prefix
        if prefix and (not prefix.endswith("/") or prefix.startswith("/")):
            raise EvidenceError(f"evidence.s3.prefix {prefix!r} must end in '/' and not start with one")
        if prefix:
            validate_key(prefix.rstrip("/"))
        self.prefix = prefix
        self.encoding: sealmod.Encoding = "jsonl+zstd" if compression == "zstd" else "jsonl"
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
        self._ready = False
        self._chain_locks: dict[str, asyncio.Lock] = {}
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
        return self._name(key, f"{BUNDLE_SUFFIX}/{sealmod.MANIFEST}")

    def _bundle_file(self, key: str, name: str) -> str:
        return self._name(key, f"{BUNDLE_SUFFIX}/{name}")

    def _head(self, chain_key: str) -> str:
        return self._name(chain_key, f"/{sealmod.CHAIN_HEAD}") if chain_key else self.prefix + sealmod.CHAIN_HEAD

    # ------------------------------------------------------------ readiness

    async def _prepare(self) -> None:
        """Before the first write: the bucket must lock what it is given, and hold this deployment's
        public key (or none yet): two deployments signing into one prefix would be indistinguishable."""
        if self._ready:
            return
        await self.bucket.check_locked()
        name = self.prefix + keymod.PUBLIC_KEY_FILENAME
        pem = keymod.public_pem(self.signing_key.public_key())
        if await self.bucket.put_new(name, pem, "application/x-pem-file") is None:
            existing = await self.bucket.oldest(name)
            if existing is None or existing[0] != pem:
                raise EvidenceError(f"{self.bucket.url(name)} holds a different public key than the signing key")
        self._ready = True

    # ------------------------------------------------------------ signatures

    async def _put_signature(self, name: str, signature: bytes) -> None:
        """Create the signature; if the name exists, add it as a new version unless some version
        already is these bytes (a retry: Ed25519 signs deterministically)."""
        if await self.bucket.put_new(name, signature, JSON) is not None:
            return
        if await self.bucket.get(name) == signature:
            return
        for version in (await self.bucket.versions(name))[:MAX_VERSIONS_READ]:
            if await self.bucket.get(name, version) == signature:
                return
        log.warning("evidence_signature_version_added", object=name)
        await self.bucket.put_version(name, signature, JSON)

    async def _signature(self, name: str, problem_of: Callable[[bytes], str | None]) -> tuple[bytes | None, str | None]:
        """The version of the signature ``name`` that vouches (``problem_of`` says None), newest
        first; else (the newest, why it does not vouch)."""
        newest = await self.bucket.get(name)
        why = problem_of(newest) if newest is not None else "signature is missing"
        if why is None:
            return newest, None
        for version in (await self.bucket.versions(name))[:MAX_VERSIONS_READ]:
            data = await self.bucket.get(name, version)
            if data is not None and problem_of(data) is None:
                return data, None
        return newest, why

    async def _document_check(self, key: str, data: bytes) -> Callable[[bytes], str | None]:
        """What a signature of the document ``data`` under ``key`` must pass (None: it vouches)."""
        public_key = await self._public_key()

        def problem(sig: bytes) -> str | None:
            try:
                sig_file, signature = sealmod.parse_signature(sig)
            except EvidenceError as exc:
                return str(exc)
            if sig_file.key is None:
                return "signature does not name its key"
            return sealmod.document_signature_problem(public_key, sig_file, signature, key, data)

        return problem

    async def _manifest_check(self, data: bytes) -> Callable[[bytes], str | None]:
        """What a signature of the manifest ``data`` must pass (None: it vouches)."""
        public_key = await self._public_key()

        def problem(sig: bytes) -> str | None:
            try:
                _, signature = sealmod.parse_signature(sig)
            except EvidenceError as exc:
                return str(exc)
            if not keymod.verify_signature(public_key, signature, data):
                return "signature does not verify (manifest altered, replaced, or signed by another key)"
            return None

        return problem

    # ------------------------------------------------------------ documents

    def put_json(self, key: str, document: Mapping[str, Any] | list[Any]) -> EvidenceRef:
        """Store ``document`` as canonical JSON under ``key``, once: the same content again returns
        the ref of what is stored; different content raises ``EvidenceError``."""
        return self._io.call(self._put_json(key, document))

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object its writer already encoded as canonical JSON (a document too large to
        build as Python values first: a company's exposure scope). Same rules as ``put_json``."""
        if not data.startswith(b"{"):
            raise EvidenceError(f"evidence key {key!r}: a canonical document must be a JSON object")
        return self._io.call(self._put_document(key, data, 1))

    async def _put_json(self, key: str, document: Mapping[str, Any] | list[Any]) -> EvidenceRef:
        data = canonical_json(document)
        return await self._put_document(key, data, len(document) if isinstance(document, list) else 1)

    async def _put_document(self, key: str, data: bytes, records: int) -> EvidenceRef:
        name = self._document(key)
        await self._prepare()
        if await self.bucket.versions(self._manifest(key)):
            raise EvidenceError(f"evidence key {key!r} already holds a sealed bundle")
        digest = sha256_hex(data)
        signature = sealmod.document_signature_bytes(self.signing_key, key, data)
        # a retry (or a refused write) is told apart before anything is written: a refusal leaves no trace
        version = await self._same_document(key, name, data)
        if version is None:
            await self._put_signature(name + SIGNATURE_SUFFIX, signature)
            version = await self.bucket.put_new(name, data, JSON)
            if version is None:  # created meanwhile, by a concurrent attempt
                version = await self._same_document(key, name, data)
                assert version is not None
        # else its signature is there: it is written before the document, and locked
        log.info("evidence_document_stored", key=key, sha256=digest, size_bytes=len(data), version_id=version)
        return EvidenceRef(uri=self.uri(key), sha256=digest, records=records, size_bytes=len(data), version_id=version)

    async def _same_document(self, key: str, name: str, data: bytes) -> str | None:
        """The version of ``name`` the store created, if it holds ``data``; None if there is none;
        ``EvidenceError`` if it holds something else."""
        existing = await self.bucket.oldest(name)
        if existing is None:
            return None
        if existing[0] != data:
            raise EvidenceError(f"evidence key {key!r} already holds different content")
        log.debug("evidence_document_exists", key=key)
        return existing[1]

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what is stored under ``key`` (document or completely sealed bundle)."""
        return self._io.call(self._get(key))

    async def _get(self, key: str) -> EvidenceRef | None:
        found = await self.bucket.oldest(self._document(key))
        if found is not None:
            data, version = found
            doc = _parse(key, data)
            records = len(doc) if isinstance(doc, list) else 1
            return EvidenceRef(
                uri=self.uri(key), sha256=sha256_hex(data), records=records, size_bytes=len(data), version_id=version
            )
        bundle = await self._bundle_ref(key)
        return None if bundle is None else bundle[0]

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        """The document under ``key`` (a bundle's key gives its manifest): ``version_id`` if given
        (what the ref recorded), else the first version; checked against ``expected_sha256`` and
        against its signature for this key. ``EvidenceError`` naming the key otherwise."""
        return self._io.call(self._read_json(key, expected_sha256, version_id))

    async def _read_json(self, key: str, expected_sha256: str | None, version_id: str | None) -> Any:
        name = self._document(key)
        document = True
        data = await self._fetch(name, version_id)
        if data is None:
            document = False
            name = self._manifest(key)
            data = await self._fetch(name, version_id)
            if data is None:
                where = f" (version {version_id})" if version_id else ""
                raise EvidenceError(f"no evidence under key {key!r}{where}")
        if expected_sha256 is not None and (digest := sha256_hex(data)) != expected_sha256:
            raise EvidenceError(
                f"evidence under key {key!r} is not the one its pause recorded: sha256 {digest}, "
                f"recorded {expected_sha256}"
            )
        if document:
            sig_name = name + SIGNATURE_SUFFIX
            _, why = await self._signature(sig_name, await self._document_check(key, data))
        else:
            sig_name = self._bundle_file(key, sealmod.SIGNATURE)
            _, why = await self._signature(sig_name, await self._manifest_check(data))
        if why is not None:
            raise EvidenceError(f"evidence under key {key!r} does not match its signature: {why}")
        parsed = _parse(key, data)
        if not document and (not isinstance(parsed, dict) or parsed.get("key") != key):
            raise EvidenceError(f"the manifest under key {key!r} is for another key (copied from elsewhere)")
        return parsed

    async def _fetch(self, name: str, version_id: str | None) -> bytes | None:
        if version_id is not None:
            return await self.bucket.get(name, version_id)
        found = await self.bucket.oldest(name)
        return None if found is None else found[0]

    # ------------------------------------------------------------ bundles

    async def seal(self, key: str, records: AsyncIterator[Mapping[str, Any]]) -> tuple[EvidenceRef, int]:
        """Stream ``records`` into a sealed bundle under ``key``; (ref to the manifest, chunk count).
        If ``key`` is already sealed (an activity retry), its ref is returned and ``records`` is not read."""
        blocks = sealmod.record_blocks(
            records, block_bytes=min(sealmod.BLOCK_BYTES, self.chunk_bytes), block_records=self.chunk_records
        )
        return await self._seal(key, records, blocks)

    async def seal_blocks(self, key: str, blocks: AsyncIterator[sealmod.RecordBlock]) -> tuple[EvidenceRef, int]:
        """``seal`` for records already serialised as canonical JSON lines, in blocks."""
        return await self._seal(key, blocks, blocks)

    async def _seal(
        self, key: str, source: AsyncIterator[Any], blocks: AsyncIterator[sealmod.RecordBlock]
    ) -> tuple[EvidenceRef, int]:
        parts = validate_key(key)
        await self._io.acall(self._prepare())
        if await self._io.acall(self.bucket.versions(self._document(key))):
            raise EvidenceError(f"evidence key {key!r} already holds a document")
        existing = await self._io.acall(self._bundle_ref(key))
        if existing is not None:
            await _close(source)
            await self._io.acall(self._catch_up_head(sealmod.parent_key(key)))
            log.info("evidence_bundle_exists", key=key, manifest_sha256=existing[0].sha256)
            return existing
        # chunks are made exactly as the local store makes them, in a private staging directory
        staging = Path(tempfile.mkdtemp(prefix="pausegate-seal-"))
        try:
            (staging / sealmod.CHUNKS).mkdir(mode=DIR_MODE)
            chunker = sealmod.Chunker(
                staging / sealmod.CHUNKS,
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
            return await self._io.acall(self._publish(key, "/".join(parts[:-1]), staging, entries))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def _bundle_ref(self, key: str) -> tuple[EvidenceRef, int] | None:
        found = await self.bucket.oldest(self._manifest(key))
        if found is None:
            return None
        data, version = found
        # the signature is written before the manifest: a manifest it does not vouch for was put
        # there by someone else, and must not be taken for this pause's bundle
        _, why = await self._signature(self._bundle_file(key, sealmod.SIGNATURE), await self._manifest_check(data))
        if why is not None:
            raise EvidenceError(
                f"bundle {key!r} has a manifest this deployment did not sign ({why}): not taken as sealed"
            )
        manifest = sealmod.parse_manifest(data)
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
        self, key: str, pause: str, staging: Path, raw_entries: list[sealmod.ManifestEntry]
    ) -> tuple[EvidenceRef, int]:
        """Upload the chunks, then chain, sign and create the manifest (its existence is what makes
        the bundle sealed), then move the chain's head."""
        chain_key = sealmod.parent_key(key)
        # content-addressed, so uploading them twice (two attempts) is harmless: outside the lock
        await self._upload_chunks(key, staging / sealmod.CHUNKS, raw_entries)
        async with self._chain_lock(chain_key):
            existing = await self._bundle_ref(key)
            if existing is not None:  # another attempt of the same activity finished first
                await self._move_head(chain_key)
                return existing
            tip = await self._chain_tip(chain_key)
            manifest = sealmod.build_manifest(
                key=key,
                pause=pause,
                tip=tip,
                raw_entries=raw_entries,
                signing_key=self.signing_key,
                encoding=self.encoding,
            )
            data = canonical_json(manifest.model_dump(mode="json"))
            await self._put_signature(
                self._bundle_file(key, sealmod.SIGNATURE), sealmod.signature_bytes(self.signing_key, data)
            )
            version = await self.bucket.put_new(self._manifest(key), data, JSON)
            if version is None:  # a concurrent attempt on another host created it first
                existing = await self._bundle_ref(key)
                assert existing is not None
                await self._move_head(chain_key)
                return existing
            digest = sha256_hex(data)
            await self._publish_head(chain_key, sealmod.ChainTip(key, digest, manifest.chain_index))
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

    async def _upload_chunks(self, key: str, directory: Path, entries: list[sealmod.ManifestEntry]) -> None:
        limit = asyncio.Semaphore(MAX_CONCURRENCY)
        names = sorted({sealmod.chunk_name(e.sha256, self.encoding) for e in entries})

        async def upload(file_name: str) -> None:
            async with limit:
                data = await asyncio.to_thread((directory / file_name).read_bytes)
                name = self._bundle_file(key, f"{sealmod.CHUNKS}/{file_name}")
                if await self.bucket.put_new(name, data) is None and await self._chunk_bytes(name) is None:
                    # a name planted before sealing must not make the bundle unreadable: a chunk is
                    # known by its digest, so the genuine bytes are added as a version beside it
                    log.warning("evidence_chunk_version_added", object=name)
                    await self.bucket.put_version(name, data)

        await asyncio.gather(*(upload(n) for n in names))

    async def _chunk_bytes(self, name: str) -> bytes | None:
        """The version of chunk ``name`` whose digest its name gives, newest first; None if none."""
        digest = name.rsplit("/", 1)[-1].split(".", 1)[0]
        newest = await self.bucket.get(name)
        if newest is not None and sha256_hex(newest) == digest:
            return newest
        for version in (await self.bucket.versions(name))[:MAX_VERSIONS_READ]:
            data = await self.bucket.get(name, version)
            if data is not None and sha256_hex(data) == digest:
                return data
        return None

    def iter_bundle(
        self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of a sealed bundle in sealing order: its manifest as ``read_json`` reads it,
        each chunk checked against the manifest as it is read."""
        manifest = sealmod.BundleManifest.model_validate(self.read_json(key, expected_sha256, version_id=version_id))
        for entry in manifest.entries:
            name = self._bundle_file(key, f"{sealmod.CHUNKS}/{sealmod.chunk_name(entry.sha256, manifest.encoding)}")
            stored = self._io.call(self._chunk_bytes(name))
            if stored is None:
                raise EvidenceError(f"chunk {entry.index} ({name}) is missing, or no version matches its digest")
            try:
                data = sealmod.decode_chunk(stored, manifest.encoding, entry.size_bytes)
            except EvidenceError as exc:
                raise EvidenceError(f"chunk {entry.index} ({name}): {exc}") from exc
            for line in data.splitlines():
                yield json.loads(line)

    # ------------------------------------------------------------ the chain of bundles

    async def _chain_tip(self, chain_key: str) -> sealmod.ChainTip | None:
        """The chain's latest bundle, as ``seal.chain_tip`` finds it: the signed bundles named where
        they lie, followed from the head (a hint) to the end."""
        directory = self._name(chain_key) + "/" if chain_key else self.prefix
        public_key = await self._public_key()
        successors: dict[str, sealmod.ChainTip] = {}
        for sub in sorted(await self.bucket.subdirectories(directory)):
            name = sub[len(directory) : -1]
            if not name.endswith(BUNDLE_SUFFIX):
                continue
            bundle_key = sealmod.child_key(chain_key, name.removesuffix(BUNDLE_SUFFIX))
            found = await self.bucket.oldest(sub + sealmod.MANIFEST)
            if found is None:
                continue
            data = found[0]
            try:
                manifest = sealmod.parse_manifest(data)
            except EvidenceError:
                log.warning("evidence_chain_unreadable_manifest", object=sub)
                continue
            _, why = await self._signature(sub + sealmod.SIGNATURE, await self._manifest_check(data))
            if manifest.key != bundle_key or why is not None:
                log.warning("evidence_chain_foreign_bundle_ignored", object=sub)
                continue
            prev = manifest.previous.manifest_sha256 if manifest.previous else sealmod.GENESIS
            successors.setdefault(prev, sealmod.ChainTip(manifest.key, sha256_hex(data), manifest.chain_index))
        tip: sealmod.ChainTip | None = None
        head_data = await self.bucket.get(self._head(chain_key))
        if head_data is not None:
            try:
                head = sealmod.parse_head(head_data)
                if sealmod.head_signature_problem(public_key, head) is None:
                    tip = sealmod.ChainTip(head.key, head.manifest_sha256, head.chain_index)
            except EvidenceError:
                log.warning("evidence_chain_head_unreadable", chain=chain_key)
        seen: set[str] = set()
        cursor = tip.manifest_sha256 if tip else sealmod.GENESIS
        while cursor in successors and cursor not in seen:
            seen.add(cursor)
            tip = successors[cursor]
            cursor = tip.manifest_sha256
        return tip

    async def _publish_head(self, chain_key: str, tip: sealmod.ChainTip) -> None:
        data = sealmod.head_bytes(self.signing_key, tip.key, tip.manifest_sha256, tip.chain_index)
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

    def download(self, key: str, directory: Path, *, recorded: Mapping[str, str] | None = None) -> Download:
        """Copy the evidence under ``key`` (a pause, a chain, a bundle or a document) into
        ``directory``, laid out as the local store lays it out, with the public key at its root.

        Of each document and manifest the version ``recorded`` names for its key (what the pause
        recorded) is written, else the first; of each signature, chunk and chain head the newest
        version that proves itself; of anything else in the bucket (the store wrote it not), the
        newest, so that an audit of the copy reports it. The notes say where the bucket holds more
        than the store wrote (versions added later, delete markers)."""
        return self._io.call(self._download(key, Path(directory), dict(recorded or {})))

    async def _download(self, key: str, directory: Path, recorded: dict[str, str]) -> Download:
        base = self._name(key)
        listing = await self.bucket.listing(base)
        names = [n for n in listing.versions if _belongs(n[len(base) :])]
        notes: list[str] = []
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True, mode=DIR_MODE)
        pem = await self.bucket.oldest(self.prefix + keymod.PUBLIC_KEY_FILENAME)
        if pem is not None:
            _write(directory / keymod.PUBLIC_KEY_FILENAME, pem[0])
        for name in names:
            if name in listing.deleted:
                notes.append(f"{name[len(self.prefix):]}: its newest version is a delete marker "
                             "(the locked versions remain, and were read)")
        limit = asyncio.Semaphore(MAX_CONCURRENCY)

        async def fetch(name: str, subjects: Mapping[str, bytes | None]) -> tuple[str, bytes | None]:
            async with limit:
                data, note = await self._copy_version(name, listing.versions[name], recorded, subjects)
            if note:
                notes.append(f"{name[len(self.prefix):]}: {note}")
            return name, data

        # signatures last: which version to copy depends on what they sign
        signatures = [n for n in names if n.endswith(SIGNATURE_SUFFIX)]
        chosen = dict(await asyncio.gather(*(fetch(n, {}) for n in names if n not in signatures)))
        signed = dict(await asyncio.gather(*(fetch(n, chosen) for n in signatures)))
        for name, data in sorted({**chosen, **signed}.items()):
            rel = name[len(self.prefix) :]
            if data is not None and not _write_under(directory, rel, data):
                notes.append(f"{rel!r}: not a name the store writes; not copied")
        return Download(directory=directory, objects=len(names), notes=sorted(notes))

    async def _copy_version(
        self, name: str, versions: list[str], recorded: Mapping[str, str], subjects: Mapping[str, bytes | None]
    ) -> tuple[bytes | None, str | None]:
        """The version of ``name`` a copy holds (see ``download``), and what to say about the others."""
        rel = name[len(self.prefix) :]
        if name.endswith(SIGNATURE_SUFFIX):
            target = name.removesuffix(SIGNATURE_SUFFIX)
            if target.endswith(f"{BUNDLE_SUFFIX}/{MANIFEST_SIGNATURE_STEM}"):
                target = target.removesuffix(MANIFEST_SIGNATURE_STEM) + sealmod.MANIFEST
            subject = subjects.get(target)
            evidence_key = _key_of(target[len(self.prefix) :])
            data = None
            try:
                if subject is not None and target.endswith(f"/{sealmod.MANIFEST}"):
                    data, _ = await self._signature(name, await self._manifest_check(subject))
                elif subject is not None and evidence_key is not None:
                    data, _ = await self._signature(name, await self._document_check(evidence_key, subject))
            except EvidenceError:
                data = None  # no key to choose with (the bucket's is not the pinned one): verification says so
            return (data if data is not None else await self.bucket.get(name, versions[0])), None
        if name.endswith(f"/{sealmod.CHAIN_HEAD}"):
            return await self._signed_head(name, versions), None
        note: str | None = None
        if f"{BUNDLE_SUFFIX}/{sealmod.CHUNKS}/" in rel:
            data = await self._chunk_bytes(name)
            if data is None:
                return await self.bucket.get(name, versions[0]), None
            if len(versions) > 1:
                note = f"{len(versions)} versions in the bucket; the one matching its digest was read"
            return data, note
        if rel.endswith(DOCUMENT_SUFFIX):
            evidence_key = _key_of(rel)
            version = recorded.get(evidence_key) if evidence_key else None
            if len(versions) > 1:
                which = "the recorded one" if version else "the first (what the store created)"
                note = f"{len(versions)} versions in the bucket (written again after the store created it); {which}"
                note += " was read"
            return await self.bucket.get(name, version or versions[-1]), note
        return await self.bucket.get(name, versions[0]), None


    async def _signed_head(self, name: str, versions: list[str]) -> bytes | None:
        """The newest version of a chain head that is signed by the deployment's key (junk put on top
        of it must not hide it), else the newest: verification then says what is wrong with it."""
        try:
            public_key = await self._public_key()
        except EvidenceError:  # no key to choose with (the bucket's is not the pinned one)
            return await self.bucket.get(name, versions[0])
        for version in versions[:MAX_VERSIONS_READ]:
            data = await self.bucket.get(name, version)
            if data is None:
                continue
            try:
                if sealmod.head_signature_problem(public_key, sealmod.parse_head(data)) is None:
                    return data
            except EvidenceError:
                continue
        return await self.bucket.get(name, versions[0])


def _shut(io: IoLoop, bucket: Bucket) -> None:
    try:
        io.call(bucket.aclose())
    except Exception:  # the loop already stopped (interpreter exit): nothing left to close
        pass
    finally:
        io.close()


def _belongs(rest: str) -> bool:
    """Whether an object named ``<key><rest>`` lies under ``key`` (not under a sibling key that
    merely starts with the same letters)."""
    return rest.startswith(("/", f"{BUNDLE_SUFFIX}/")) or rest in (DOCUMENT_SUFFIX, DOCUMENT_SUFFIX + SIGNATURE_SUFFIX)


def _key_of(rel: str) -> str | None:
    """The evidence key of a document's or manifest's object name (relative to the prefix)."""
    if rel.endswith(f"{BUNDLE_SUFFIX}/{sealmod.MANIFEST}"):
        key = rel.removesuffix(f"{BUNDLE_SUFFIX}/{sealmod.MANIFEST}")
    else:
        key = rel.removesuffix(DOCUMENT_SUFFIX)
    try:
        validate_key(key)
    except EvidenceError:
        return None
    return key


def _write_under(directory: Path, rel: str, data: bytes) -> bool:
    """Write ``data`` at ``directory/rel`` if ``rel`` is a plain relative path (object names are
    written by whoever has access to the bucket: none may lead out of the copy)."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\x00" in p or "\\" in p for p in parts) or len(parts) > 64:
        return False
    path = directory.joinpath(*parts)
    for parent in reversed(path.parents):
        if parent.is_relative_to(directory) and not parent.exists():
            parent.mkdir(mode=DIR_MODE)
    if path.exists() or not path.resolve().is_relative_to(directory.resolve()):
        return False
    _write(path, data)
    return True


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _parse(key: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise EvidenceError(f"evidence under key {key!r} is not JSON: {exc}") from exc


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
