"""A local directory as the evidence store (the embedded default).

Documents (``put_json``) live at ``<root>/<key>.json`` with a signature beside them
(``<key>.json.sig``, over the key and the bytes, so a document copied under another key no
longer verifies); bundles (``seal``) at ``<root>/<key>.bundle/`` (layout in
``pausegate.evidence.bundle``). Everything is written once, owner-only (0600 files, 0700
directories), and only refs (uri, digest, counts) ever leave the store.

A signature says the deployment wrote a file; only the digest a pause recorded says it is the
file that pause wrote. Readers that know that digest pass it to ``read_json``.

Anything at a key's names that the store did not write (a file planted where a document, a bundle
or a directory of the key belongs) makes the store write under a fresh name and list the plant on
the reference (``squatting``, ``local_squats``); reads by the layout's key find it there.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.errors import EvidenceError
from pausegate.evidence import local_bundles, local_squats
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.blocks import BLOCK_BYTES, RecordBlock, record_blocks
from pausegate.evidence.bundle import (
    CHUNKS,
    MANIFEST,
    SIGNATURE,
    BundleManifest,
    Encoding,
    ManifestEntry,
    document_signature_problem,
    parse_manifest,
    parse_signature,
)
from pausegate.evidence.chain import parent_key
from pausegate.evidence.chunker import DEFAULT_CHUNK_BYTES, DEFAULT_ZSTD_LEVEL, Chunker, check_chunking
from pausegate.evidence.documents import StoredDocument, canonical_object, document_data, write_document
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DOCUMENT_SUFFIX,
    SIGNATURE_SUFFIX,
    directory_lock,
    ensure_dir,
    publish_once,
    replace_file,
    sha256_hex,
    validate_key,
)
from pausegate.evidence.room import room_for
from pausegate.evidence.squatting import Placement, Squat, alternate_key, document_vouched, place, with_plants
from pausegate.models.evidence import URI_SCHEME, EvidenceRef, PlantedObject

log = structlog.get_logger(__name__)


def default_signing_key_path(directory: Path) -> Path:
    """Beside, not inside, the evidence directory: copying evidence out for offline
    verification must not copy the means to forge it."""
    return Path(directory).parent / "evidence-signing-key.pem"


class LocalEvidenceStore:
    """Write-once evidence in a local directory, signed with the deployment's Ed25519 key.

    Args:
        directory: root of the store; created (0700) if missing.
        signing_key_path: the Ed25519 private key (PEM); created on first use (0600).
            Defaults to ``evidence-signing-key.pem`` beside ``directory``.
        chunk_bytes: a chunk is closed once it holds at least this many bytes of records.
        chunk_records: ... or this many records, whichever comes first.
        compression: ``"zstd"`` stores chunks zstd-compressed: audit records shrink several
            times, so far fewer bytes wait on fsync, which bounds sealing them uncompressed;
            ``"none"`` stores plain JSON lines.
        compression_level: the zstd level. At the default, -3, compression is most of
            sealing's CPU, and audit records are stored about 6.6x smaller; lower levels gain
            little speed (more bytes to hash and write), higher ones trade speed for size.
        expected_fingerprint: the pinned fingerprint of the signing key's public half; a key
            file that does not match it is refused (someone replaced the deployment's key).
    """

    def __init__(
        self,
        directory: Path | str,
        signing_key_path: Path | str | None = None,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        chunk_records: int | None = None,
        compression: Literal["zstd", "none"] = "zstd",
        compression_level: int = DEFAULT_ZSTD_LEVEL,
        expected_fingerprint: str | None = None,
    ) -> None:
        check_chunking(chunk_bytes, chunk_records, compression)
        self.encoding: Encoding = "jsonl+zstd" if compression == "zstd" else "jsonl"
        self.compression_level = compression_level
        self.root = Path(directory).absolute()
        ensure_dir(self.root, self.root)
        self.signing_key_path = (
            Path(signing_key_path) if signing_key_path else default_signing_key_path(self.root)
        )
        self._key = keymod.load_or_create_signing_key(self.signing_key_path)
        if expected_fingerprint is not None and self.signing_key_sha256 != expected_fingerprint:
            raise EvidenceError(
                f"signing key {self.signing_key_path} has fingerprint {self.signing_key_sha256}, "
                f"not the pinned {expected_fingerprint}: evidence would be signed by a key verifiers refuse"
            )
        self.public_key_path = self.root / keymod.PUBLIC_KEY_FILENAME
        keymod.write_public_key(self._key.public_key(), self.public_key_path)
        self.chunk_bytes = chunk_bytes
        self.chunk_records = chunk_records
        self._documents = _DocumentFiles(self)

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The deployment's key, for other records the deployment vouches for (the API's refusal log)."""
        return self._key

    @property
    def signing_key_sha256(self) -> str:
        """Fingerprint of the public key evidence verifies with (what configuration pins)."""
        return keymod.fingerprint(self._key.public_key())

    @property
    def location(self) -> str:
        """Where the evidence lies, for people."""
        return str(self.root)

    # ------------------------------------------------------------ paths

    def _base(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key))

    def document_path(self, key: str) -> Path:
        base = self._base(key)
        return base.with_name(base.name + DOCUMENT_SUFFIX)

    def bundle_path(self, key: str) -> Path:
        base = self._base(key)
        return base.with_name(base.name + BUNDLE_SUFFIX)

    @staticmethod
    def uri(key: str) -> str:
        return f"{URI_SCHEME}{key}"

    # ------------------------------------------------------------ documents

    def put_json(self, key: str, document: Mapping[str, Any] | list[Any]) -> EvidenceRef:
        """Store ``document`` as canonical JSON under ``key``, once.

        The same content again returns the same ref; different content raises ``EvidenceError``.
        """
        data, records = document_data(document)
        with room_for(self.root, key):
            return write_document(self._documents, self._key, key, data, records)

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object its writer already encoded as canonical JSON (a document too large to
        build as Python values first: a company's exposure scope). Same rules as ``put_json``."""
        with room_for(self.root, key):
            return write_document(self._documents, self._key, key, canonical_object(key, data), 1)

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what the store wrote for ``key`` (document or completely sealed bundle, under the
        key or, if something was planted there, under its fresh name); None if it wrote nothing."""
        return self._get(key, ())

    def _get(self, key: str, plants: tuple[PlantedObject, ...]) -> EvidenceRef | None:
        public_key = self._key.public_key()
        path = self.document_path(key)
        data = local_squats.read_regular(path)
        signature = local_squats.read_regular(path.with_name(path.name + SIGNATURE_SUFFIX))
        if data is not None and document_vouched(public_key, key, data, signature):
            doc = self._parse(key, data)
            records = len(doc) if isinstance(doc, list) else 1
            ref = EvidenceRef(uri=self.uri(key), sha256=sha256_hex(data), records=records, size_bytes=len(data))
            return with_plants(ref, plants)
        bundle = self.bundle_path(key)
        if local_squats.bundle_is_own(bundle, key, public_key):
            data = (bundle / MANIFEST).read_bytes()
            manifest = parse_manifest(data)
            ref = EvidenceRef(
                uri=self.uri(key), sha256=sha256_hex(data), records=manifest.records, size_bytes=manifest.size_bytes
            )
            return with_plants(ref, plants)
        if not plants:  # nothing of the store's under the key: under the fresh name a plant made it take?
            placement = self._resolve(key)
            if placement.key != key:
                return self._get(placement.key, placement.plants)
        return None

    def _resolve(self, key: str) -> Placement:
        """Where the store's object for ``key`` lies: under the key, or under the fresh name a plant
        made it take (with what was planted); the key itself when it wrote nothing for it."""
        public_key = self._key.public_key()
        if local_squats.holds_own(self.root, key, public_key):
            return Placement(key)
        squat = local_squats.any_squat(self.root, key, public_key)
        if squat is not None and squat.index is not None:
            fresh = alternate_key(self._key, key, squat.index)
            if local_squats.holds_own(self.root, fresh, public_key):
                return Placement(fresh, squat.plants)
        return Placement(key)

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        """The document under ``key`` (a bundle's key gives its manifest), after checking that the
        store's key signed it for this key and, given ``expected_sha256`` (the digest the pause
        recorded), that it is exactly the recorded one.

        ``EvidenceError`` naming the key if it is missing, altered, signed for another key, not
        the recorded one, or signed before signatures named their key and read without a
        recorded digest (nothing then ties it to this key). What was planted under ``key`` is never
        read when the store wrote the key's evidence under a fresh name.
        """
        try:
            return self._read_json(key, expected_sha256)
        except EvidenceError:
            fresh = self._resolve(key).key
            if fresh == key:
                raise
        return self._read_json(fresh, expected_sha256)

    def _read_json(self, key: str, expected_sha256: str | None) -> Any:
        path = self.document_path(key)
        document = path.exists()
        if document:
            sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
        else:
            bundle = self.bundle_path(key)
            path, sig_path = bundle / MANIFEST, bundle / SIGNATURE
            if not path.exists():
                raise EvidenceError(f"no evidence under key {key!r}")
        data = path.read_bytes()
        if expected_sha256 is not None and (digest := sha256_hex(data)) != expected_sha256:
            raise EvidenceError(
                f"evidence under key {key!r} is not the one its pause recorded: sha256 {digest}, "
                f"recorded {expected_sha256}"
            )
        try:
            sig_file, signature = parse_signature(sig_path.read_bytes())
        except FileNotFoundError:
            raise EvidenceError(f"evidence under key {key!r} has no signature") from None
        public_key = self._key.public_key()
        if document:
            problem = document_signature_problem(public_key, sig_file, signature, key, data)
            if problem is not None:
                raise EvidenceError(f"evidence under key {key!r} does not match its signature: {problem}")
            if sig_file.key is None and expected_sha256 is None:
                raise EvidenceError(
                    f"evidence under key {key!r} was signed before signatures named their key; "
                    "it is read only against the digest its pause recorded"
                )
            return self._parse(key, data)
        if not keymod.verify_signature(public_key, signature, data):
            raise EvidenceError(f"evidence under key {key!r} does not match its signature")
        manifest = self._parse(key, data)
        # a manifest names its key inside what is signed: one copied here from elsewhere says so
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            raise EvidenceError(f"the manifest under key {key!r} is for another key (copied from elsewhere)")
        return manifest

    @staticmethod
    def _parse(key: str, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise EvidenceError(f"evidence under key {key!r} is not JSON: {exc}") from exc

    # ------------------------------------------------------------ bundles

    async def seal(self, key: str, records: AsyncIterator[Mapping[str, Any]]) -> tuple[EvidenceRef, int]:
        """Stream ``records`` into a sealed bundle under ``key``; returns (ref to the manifest,
        chunk count). If ``key`` is already completely sealed (an activity retry), the existing
        bundle's ref is returned and ``records`` is not consumed."""
        blocks = record_blocks(
            records, block_bytes=min(BLOCK_BYTES, self.chunk_bytes), block_records=self.chunk_records
        )
        return await self._seal(key, records, blocks)

    async def seal_blocks(self, key: str, blocks: AsyncIterator[RecordBlock]) -> tuple[EvidenceRef, int]:
        """``seal`` for records already serialised as canonical JSON lines, in blocks: the
        bulk path, for producers that have their records' bytes at hand."""
        return await self._seal(key, blocks, blocks)

    async def _seal(
        self, key: str, source: AsyncIterator[Any], blocks: AsyncIterator[RecordBlock]
    ) -> tuple[EvidenceRef, int]:
        with room_for(self.root, key):
            return await self._seal_staged(key, source, blocks)

    async def _seal_staged(
        self, key: str, source: AsyncIterator[Any], blocks: AsyncIterator[RecordBlock]
    ) -> tuple[EvidenceRef, int]:
        layout_key = key
        placement = self._bundle_placement(layout_key)
        key = placement.key
        final = self.bundle_path(key)
        ensure_dir(self.root, final.parent)
        existing, staging = await asyncio.to_thread(local_bundles.sealed_or_staging, final)
        if existing is not None:
            await _close(source)
            await asyncio.to_thread(local_bundles.catch_up_head, final, key, self._key)
            log.info("evidence_bundle_exists", key=key, manifest_sha256=existing[0])
            return with_plants(self._ref(key, existing), placement.plants), existing[3]
        assert staging is not None
        chunker = Chunker(
            staging / CHUNKS,
            chunk_bytes=self.chunk_bytes,
            chunk_records=self.chunk_records,
            encoding=self.encoding,
            level=self.compression_level,
        )
        try:
            await chunker.consume(blocks)
            raw_entries = await chunker.close()
            try:
                result = await asyncio.to_thread(self._finalize, key, staging, raw_entries)
            except (EvidenceError, OSError):
                # a name planted while the records were sealed (someone watching the directory) is a squat
                # like any other: looked at again, it moves the bundle, whose chunks are already staged
                again = self._bundle_placement(layout_key)
                if again.key == key:
                    raise
                placement, key = again, again.key
                ensure_dir(self.root, self.bundle_path(key).parent)
                result = await asyncio.to_thread(self._finalize, key, staging, raw_entries)
        except BaseException:
            await chunker.abort()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return with_plants(self._ref(key, result), placement.plants), result[3]

    def _bundle_placement(self, key: str) -> Placement:
        public_key = self._key.public_key()
        return place(key, local_squats.bundle_squat(self.root, key, public_key), self._key,
                     lambda fresh: local_squats.bundle_squat(self.root, fresh, public_key))

    def _finalize(self, key: str, staging: Path, raw_entries: list[ManifestEntry]) -> tuple[str, int, int, int]:
        return local_bundles.finalize(
            key=key, pause=parent_key(key), staging=staging, final=self.bundle_path(key), raw_entries=raw_entries,
            signing_key=self._key, encoding=self.encoding,
        )

    def iter_bundle(
        self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of a sealed bundle in sealing order: its manifest signed by the store's key
        for this key (and, given ``expected_sha256``, the recorded one), each chunk checked
        against it as it is read."""
        key = self._resolve(key).key
        final = self.bundle_path(key)
        if not (final / MANIFEST).exists():
            raise EvidenceError(f"no sealed bundle under {key!r}")
        manifest = BundleManifest.model_validate(self.read_json(key, expected_sha256))
        for line in local_bundles.bundle_lines(final, manifest):
            yield json.loads(line)

    def _ref(self, key: str, parts: tuple[str, int, int, int]) -> EvidenceRef:
        digest, records, size, _ = parts
        return EvidenceRef(uri=self.uri(key), sha256=digest, records=records, size_bytes=size)


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class _DocumentFiles:
    """Documents as files: ``<key>.json`` and ``<key>.json.sig`` beside it, published by link, written
    under their directory's lock (``documents.DocumentMedium``)."""

    def __init__(self, store: LocalEvidenceStore) -> None:
        self._store = store

    def squat(self, key: str, data: bytes | None) -> Squat | None:
        return local_squats.document_squat(self._store.root, key, self._store.signing_key.public_key(), data)

    @contextmanager
    def writing(self, key: str) -> Iterator[None]:
        directory = self._store.document_path(key).parent
        ensure_dir(self._store.root, directory)
        with directory_lock(directory):
            yield

    def stored(self, key: str) -> StoredDocument | None:
        try:
            return StoredDocument(self._store.document_path(key).read_bytes())
        except FileNotFoundError:
            return None

    def put_signature(self, key: str, signature: bytes) -> None:
        path = self._signature_path(key)
        if not publish_once(path, signature) and path.read_bytes() != signature:
            log.warning("evidence_orphan_signature_replaced", key=key)
            replace_file(path, signature)

    def keep_signature(self, key: str, signature: bytes) -> None:
        publish_once(self._signature_path(key), signature)

    def create(self, key: str, data: bytes) -> StoredDocument | None:
        return StoredDocument(data) if publish_once(self._store.document_path(key), data) else None

    def _signature_path(self, key: str) -> Path:
        path = self._store.document_path(key)
        return path.with_name(path.name + SIGNATURE_SUFFIX)
