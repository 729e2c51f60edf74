"""A local directory as the evidence store (the embedded default).

Documents (``put_json``) live at ``<root>/<key>.json`` with a signature beside them
(``<key>.json.sig``, over the key and the bytes, so a document copied under another key no
longer verifies); bundles (``seal``) at ``<root>/<key>.bundle/`` (layout in
``pausegate.evidence.seal``). Everything is written once, owner-only (0600 files, 0700
directories), and only refs (uri, digest, counts) ever leave the store.

A signature says the deployment wrote a file; only the digest a pause recorded says it is the
file that pause wrote. Readers that know that digest pass it to ``read_json``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.errors import EvidenceError
from pausegate.evidence import seal as sealmod
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import (
    BUNDLE_SUFFIX,
    DOCUMENT_SUFFIX,
    SIGNATURE_SUFFIX,
    canonical_document,
    directory_lock,
    ensure_dir,
    publish_once,
    replace_file,
    sha256_hex,
    validate_key,
)
from pausegate.models.evidence import URI_SCHEME, EvidenceRef

if TYPE_CHECKING:
    from pausegate.connectors.interfaces import EvidenceStore

log = structlog.get_logger(__name__)


async def read_recorded(store: EvidenceStore, ref: EvidenceRef) -> Any:
    """The document (or bundle manifest) ``ref`` names, exactly the one recorded: its digest, and its
    version where the store keeps versions; read off the event loop, whichever store is configured."""
    return await asyncio.to_thread(store.read_json, ref.key, ref.sha256, version_id=ref.version_id)


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
        chunk_bytes: int = sealmod.DEFAULT_CHUNK_BYTES,
        chunk_records: int | None = None,
        compression: Literal["zstd", "none"] = "zstd",
        compression_level: int = sealmod.DEFAULT_ZSTD_LEVEL,
        expected_fingerprint: str | None = None,
    ) -> None:
        sealmod.check_chunking(chunk_bytes, chunk_records, compression)
        self.encoding: sealmod.Encoding = "jsonl+zstd" if compression == "zstd" else "jsonl"
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
        data = canonical_document(document)
        return self._put_document(key, data, len(document) if isinstance(document, list) else 1)

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object its writer already encoded as canonical JSON (a document too large to
        build as Python values first: a company's exposure scope). Same rules as ``put_json``."""
        if not data.startswith(b"{"):
            raise EvidenceError(f"evidence key {key!r}: a canonical document must be a JSON object")
        return self._put_document(key, data, 1)

    def _put_document(self, key: str, data: bytes, records: int) -> EvidenceRef:
        path = self.document_path(key)
        if self.bundle_path(key).exists():
            raise EvidenceError(f"evidence key {key!r} already holds a sealed bundle")
        digest = sha256_hex(data)
        ensure_dir(self.root, path.parent)
        with directory_lock(path.parent):
            self._publish_signed(key, path, data)
        log.info("evidence_document_stored", key=key, sha256=digest, size_bytes=len(data))
        return EvidenceRef(uri=self.uri(key), sha256=digest, records=records, size_bytes=len(data))

    def _publish_signed(self, key: str, path: Path, data: bytes) -> None:
        """Write the document and its signature, under the directory's lock (nobody else
        publishes this key meanwhile)."""
        sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
        # Ed25519 signs deterministically, so a retry produces the same bytes
        signature = sealmod.document_signature_bytes(self._key, key, data)
        if path.exists():
            self._check_same(key, path, data)
            # a document stored before signatures were written first may lack one: add it
            publish_once(sig_path, signature)
            return
        # The signature goes first, so that a crash between the two writes can leave only a
        # signature without a document, which vouches for nothing and is replaced by the
        # retry; a document without its signature would be unreadable for good.
        if not publish_once(sig_path, signature) and sig_path.read_bytes() != signature:
            log.warning("evidence_orphan_signature_replaced", key=key)
            replace_file(sig_path, signature)
        if not publish_once(path, data):
            self._check_same(key, path, data)

    @staticmethod
    def _check_same(key: str, path: Path, data: bytes) -> None:
        if path.read_bytes() != data:
            raise EvidenceError(f"evidence key {key!r} already holds different content")
        log.debug("evidence_document_exists", key=key)

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what is stored under ``key`` (document or completely sealed bundle)."""
        path = self.document_path(key)
        if path.exists():
            data = path.read_bytes()
            doc = self._parse(key, data)
            records = len(doc) if isinstance(doc, list) else 1
            return EvidenceRef(
                uri=self.uri(key), sha256=sha256_hex(data), records=records, size_bytes=len(data)
            )
        bundle = self.bundle_path(key)
        if (bundle / sealmod.MANIFEST).exists() and (bundle / sealmod.SIGNATURE).exists():
            data = (bundle / sealmod.MANIFEST).read_bytes()
            manifest = sealmod.parse_manifest(data)
            return EvidenceRef(
                uri=self.uri(key),
                sha256=sha256_hex(data),
                records=manifest.records,
                size_bytes=manifest.size_bytes,
            )
        return None

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        """The document under ``key`` (a bundle's key gives its manifest), after checking that the
        store's key signed it for this key and, given ``expected_sha256`` (the digest the pause
        recorded), that it is exactly the recorded one.

        ``EvidenceError`` naming the key if it is missing, altered, signed for another key, not
        the recorded one, or signed before signatures named their key and read without a
        recorded digest (nothing then ties it to this key).
        """
        path = self.document_path(key)
        document = path.exists()
        if document:
            sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
        else:
            bundle = self.bundle_path(key)
            path, sig_path = bundle / sealmod.MANIFEST, bundle / sealmod.SIGNATURE
            if not path.exists():
                raise EvidenceError(f"no evidence under key {key!r}")
        data = path.read_bytes()
        if expected_sha256 is not None and (digest := sha256_hex(data)) != expected_sha256:
            raise EvidenceError(
                f"evidence under key {key!r} is not the one its pause recorded: sha256 {digest}, "
                f"recorded {expected_sha256}"
            )
        try:
            sig_file, signature = sealmod.parse_signature(sig_path.read_bytes())
        except FileNotFoundError:
            raise EvidenceError(f"evidence under key {key!r} has no signature") from None
        public_key = self._key.public_key()
        if document:
            problem = sealmod.document_signature_problem(public_key, sig_file, signature, key, data)
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
        import json

        try:
            return json.loads(data)
        except ValueError as exc:
            raise EvidenceError(f"evidence under key {key!r} is not JSON: {exc}") from exc

    # ------------------------------------------------------------ bundles

    async def seal(self, key: str, records: AsyncIterator[Mapping[str, Any]]) -> tuple[EvidenceRef, int]:
        """Stream ``records`` into a sealed bundle under ``key``; returns (ref to the manifest,
        chunk count). If ``key`` is already completely sealed (an activity retry), the existing
        bundle's ref is returned and ``records`` is not consumed."""
        blocks = sealmod.record_blocks(
            records, block_bytes=min(sealmod.BLOCK_BYTES, self.chunk_bytes), block_records=self.chunk_records
        )
        return await self._seal(key, records, blocks)

    async def seal_blocks(self, key: str, blocks: AsyncIterator[sealmod.RecordBlock]) -> tuple[EvidenceRef, int]:
        """``seal`` for records already serialised as canonical JSON lines, in blocks: the
        bulk path, for producers that have their records' bytes at hand."""
        return await self._seal(key, blocks, blocks)

    async def _seal(
        self, key: str, source: AsyncIterator[Any], blocks: AsyncIterator[sealmod.RecordBlock]
    ) -> tuple[EvidenceRef, int]:
        final = self.bundle_path(key)
        if self.document_path(key).exists():
            raise EvidenceError(f"evidence key {key!r} already holds a document")
        parts = validate_key(key)
        pause = "/".join(parts[:-1])
        ensure_dir(self.root, final.parent)
        existing = await asyncio.to_thread(sealmod.bundle_ref_parts, final)
        if existing is not None:
            await _close(source)
            await asyncio.to_thread(sealmod.catch_up_head, final, key, self._key)
            log.info("evidence_bundle_exists", key=key, manifest_sha256=existing[0])
            return self._ref(key, existing), existing[3]
        staging = await asyncio.to_thread(sealmod.new_staging, final)
        chunker = sealmod.Chunker(
            staging / sealmod.CHUNKS,
            chunk_bytes=self.chunk_bytes,
            chunk_records=self.chunk_records,
            encoding=self.encoding,
            level=self.compression_level,
        )
        try:
            await chunker.consume(blocks)
            raw_entries = await chunker.close()
            result = await asyncio.to_thread(
                sealmod.finalize,
                key=key,
                pause=pause,
                staging=staging,
                final=final,
                raw_entries=raw_entries,
                signing_key=self._key,
                encoding=self.encoding,
            )
        except BaseException:
            await chunker.abort()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._ref(key, result), result[3]

    def iter_bundle(
        self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of a sealed bundle in sealing order: its manifest signed by the store's key
        for this key (and, given ``expected_sha256``, the recorded one), each chunk checked
        against it as it is read."""
        final = self.bundle_path(key)
        if not (final / sealmod.MANIFEST).exists():
            raise EvidenceError(f"no sealed bundle under {key!r}")
        manifest = sealmod.BundleManifest.model_validate(self.read_json(key, expected_sha256))
        for line in sealmod.bundle_lines(final, manifest):
            yield json.loads(line)

    def _ref(self, key: str, parts: tuple[str, int, int, int]) -> EvidenceRef:
        digest, records, size, _ = parts
        return EvidenceRef(uri=self.uri(key), sha256=digest, records=records, size_bytes=size)


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
