"""The evidence bundle format and what the deployment's key signs: manifests, documents, chain heads.

Layout of one bundle (``<key>`` = ``<pause>/<name>``)::

    <root>/<pause>/<name>.bundle/
        manifest.json           canonical JSON (BundleManifest)
        manifest.sig            Ed25519 signature over manifest.json's bytes (SignatureFile)
        chunks/<sha256>.jsonl.zst   records, one canonical JSON object per line, zstd-compressed
                                    (<sha256> is the digest of the file's bytes; bundles
                                    sealed uncompressed have chunks/<sha256>.jsonl)
    <root>/<pause>/.chain-head.json   the pause's latest bundle, signed (ChainHead): sealing
                                      treats it as a hint and follows the bundles; verification
                                      requires it, so deleting the newest bundle is detected
    <root>/<pause>/.chain.lock        serialises appends to the pause's chain (local directory)

Here ``<pause>`` is the directory a chain lives in (``<pause key>/audit/<source>``). Heads
written before heads were signed have no ``signature``: verification reports them, and sealing
does not take them as a hint (``pausegate.evidence.chain``). An S3 bucket names its objects the
same way, under its prefix.
"""

from __future__ import annotations

import base64
import io
import json
from typing import BinaryIO, Literal

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError

from pausegate.errors import EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import canonical_json, sha256_hex
from pausegate.models.base import Model
from pausegate.models.evidence import SHA256_HEX

FORMAT: Literal["pausegate-evidence-bundle/1"] = "pausegate-evidence-bundle/1"
GENESIS = "0" * 64
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHUNKS = "chunks"
CHAIN_HEAD = ".chain-head.json"
CHAIN_LOCK = ".chain.lock"


class ManifestEntry(Model):
    """One chunk, chained to the entry before it (the first to the previous bundle's manifest)."""

    index: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(ge=0)
    records: int = Field(ge=0)
    first_at: str | None = None
    last_at: str | None = None
    prev: str = Field(pattern=SHA256_HEX)


class PreviousBundle(Model):
    """The bundle sealed just before this one for the same pause."""

    key: str
    manifest_sha256: str = Field(pattern=SHA256_HEX)


class BundleManifest(Model):
    """What a signature vouches for: every chunk by digest, in order, and the link to the past."""

    format: Literal["pausegate-evidence-bundle/1"] = FORMAT
    key: str
    pause: str
    sealed_at: str
    chain_index: int = Field(ge=0)
    previous: PreviousBundle | None
    records: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    chunk_count: int = Field(ge=0)
    first_at: str | None = None
    last_at: str | None = None
    head: str = Field(
        pattern=SHA256_HEX, description="Digest of the last entry (GENESIS chain start if none)."
    )
    signing_key_sha256: str = Field(pattern=SHA256_HEX)
    encoding: Literal["jsonl", "jsonl+zstd"] = Field(
        default="jsonl", description="How chunk files store their records; entries' sha256 is of the stored bytes."
    )
    entries: list[ManifestEntry]


class SignatureFile(Model):
    algorithm: Literal["ed25519"] = "ed25519"
    key_sha256: str = Field(pattern=SHA256_HEX)
    signature: str
    key: str | None = Field(
        default=None,
        description="The evidence key a document's signature binds it to: the signed message is "
        "document_message(key, bytes). Absent for manifests (they name their key inside) and for "
        "documents signed before signatures named their key (signed over the bytes alone).",
    )


class ChainHead(Model):
    """The newest bundle of a chain, signed so that it cannot be rewritten to an older bundle
    without the deployment's key (``signature`` is None in heads written before they were signed)."""

    key: str
    manifest_sha256: str = Field(pattern=SHA256_HEX)
    chain_index: int = Field(ge=0)
    signature: SignatureFile | None = None


# Domain prefixes keep one kind of signed message from ever being read as another: a document
# whose bytes happen to look like a head must not lend its signature to a forged head.
DOCUMENT_DOMAIN = b"pausegate-evidence-document/1\n"
HEAD_DOMAIN = b"pausegate-evidence-chain-head/1\n"


def entry_digest(entry: ManifestEntry) -> str:
    return sha256_hex(canonical_json(entry.model_dump(mode="json")))


def chain_entries(raw: list[ManifestEntry], start: str) -> tuple[list[ManifestEntry], str]:
    """Link entries: each ``prev`` is the digest of the entry before; returns (entries, head)."""
    out: list[ManifestEntry] = []
    prev = start
    for e in raw:
        linked = e.model_copy(update={"prev": prev})
        out.append(linked)
        prev = entry_digest(linked)
    return out, prev


def parse_manifest(data: bytes) -> BundleManifest:
    try:
        return BundleManifest.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise EvidenceError(f"manifest does not parse: {exc}") from exc


def parse_signature(data: bytes) -> tuple[SignatureFile, bytes]:
    try:
        sig = SignatureFile.model_validate(json.loads(data))
        return sig, base64.b64decode(sig.signature, validate=True)
    except (ValueError, ValidationError) as exc:
        raise EvidenceError(f"signature file does not parse: {exc}") from exc


def signature_json(sig: SignatureFile) -> bytes:
    """A signature file's bytes; fields that are None are left out, so manifest signatures keep
    the exact form they always had."""
    return canonical_json(sig.model_dump(mode="json", exclude_none=True))


def signature_bytes(key: Ed25519PrivateKey, data: bytes) -> bytes:
    sig = SignatureFile(
        key_sha256=keymod.fingerprint(key.public_key()), signature=base64.b64encode(key.sign(data)).decode()
    )
    return signature_json(sig)


def document_message(evidence_key: str, data: bytes) -> bytes:
    """What a document's signature covers: its key as well as its bytes, so that a genuine document
    copied under another key (another pause's scope) no longer verifies there. Keys hold no newline."""
    return DOCUMENT_DOMAIN + evidence_key.encode() + b"\n" + data


def document_signature_bytes(key: Ed25519PrivateKey, evidence_key: str, data: bytes) -> bytes:
    sig = SignatureFile(
        key_sha256=keymod.fingerprint(key.public_key()),
        signature=base64.b64encode(key.sign(document_message(evidence_key, data))).decode(),
        key=evidence_key,
    )
    return signature_json(sig)


def document_signature_problem(
    public_key: Ed25519PublicKey, sig: SignatureFile, signature: bytes, evidence_key: str, data: bytes
) -> str | None:
    """Why a document's signature does not vouch for ``data`` under ``evidence_key`` (None if it does)."""
    if sig.key is None:
        message = data
    elif sig.key != evidence_key:
        return f"signed for key {sig.key!r}, found at key {evidence_key!r} (copied from elsewhere)"
    else:
        message = document_message(evidence_key, data)
    if not keymod.verify_signature(public_key, signature, message):
        return (
            f"signature does not verify with public key {keymod.fingerprint(public_key)} "
            "(altered, replaced, or signed by another key)"
        )
    return None


def head_message(key: str, manifest_sha256: str, chain_index: int) -> bytes:
    return HEAD_DOMAIN + canonical_json({"key": key, "manifest_sha256": manifest_sha256, "chain_index": chain_index})


def head_bytes(signing_key: Ed25519PrivateKey, key: str, manifest_sha256: str, chain_index: int) -> bytes:
    signature = signing_key.sign(head_message(key, manifest_sha256, chain_index))
    head = ChainHead(
        key=key,
        manifest_sha256=manifest_sha256,
        chain_index=chain_index,
        signature=SignatureFile(
            key_sha256=keymod.fingerprint(signing_key.public_key()), signature=base64.b64encode(signature).decode()
        ),
    )
    return canonical_json(head.model_dump(mode="json", exclude_none=True))


def parse_head(data: bytes) -> ChainHead:
    try:
        return ChainHead.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise EvidenceError(f"chain head does not parse: {exc}") from exc


def head_signature_problem(public_key: Ed25519PublicKey, head: ChainHead) -> str | None:
    """Why ``head`` is not vouched for by ``public_key`` (None if it is)."""
    if head.signature is None:
        return "chain head is unsigned"
    try:
        signature = base64.b64decode(head.signature.signature, validate=True)
    except ValueError:
        return "chain head signature is not base64"
    if not keymod.verify_signature(
        public_key, signature, head_message(head.key, head.manifest_sha256, head.chain_index)
    ):
        return (
            f"chain head signature does not verify with public key {keymod.fingerprint(public_key)} "
            "(altered, replaced, or signed by another key)"
        )
    return None


def manifest_signature_problem(
    public_key: Ed25519PublicKey, signature_file: bytes | None, manifest: bytes
) -> str | None:
    """Why the signature file ``signature_file`` does not vouch for the manifest bytes ``manifest``
    (None if it does)."""
    if signature_file is None:
        return "signature is missing"
    try:
        _, signature = parse_signature(signature_file)
    except EvidenceError as exc:
        return str(exc)
    if not keymod.verify_signature(public_key, signature, manifest):
        return "signature does not verify (manifest altered, replaced, or signed by another key)"
    return None


# ---------------------------------------------------------------- chunk files

Encoding = Literal["jsonl", "jsonl+zstd"]
CHUNK_SUFFIXES: dict[str, str] = {"jsonl": ".jsonl", "jsonl+zstd": ".jsonl.zst"}


def chunk_name(digest: str, encoding: str) -> str:
    return f"{digest}{CHUNK_SUFFIXES[encoding]}"


def inflating_reader(source: BinaryIO) -> BinaryIO:
    """The records of a stored zstd chunk, read across frames (a chunk is one frame today;
    a concatenation of frames is equally a valid zstd stream and must not be cut short)."""
    reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    return reader


def decode_chunk(stored: bytes, encoding: str, size_bytes: int) -> bytes:
    """A chunk's records from its stored bytes; never inflates beyond ``size_bytes`` + 1."""
    if encoding == "jsonl":
        return stored
    try:
        with inflating_reader(io.BytesIO(stored)) as reader:
            data = reader.read(size_bytes + 1)
    except zstandard.ZstdError as exc:
        raise EvidenceError(f"chunk does not decompress: {exc}") from exc
    if len(data) != size_bytes:
        more = "more" if len(data) > size_bytes else f"{len(data)}"
        raise EvidenceError(f"chunk inflates to {more} bytes, the manifest says {size_bytes}")
    return data
