"""Offline verification of a sealed bundle: signature, entry chain, every chunk, and the
link to the bundles sealed before it for the same pause.

Needs nothing but the bundle's directory (with its sibling bundles) and the public key.
Every problem is reported with the file and, where it applies, the manifest entry.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field

from pausegate.errors import EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import BUNDLE_SUFFIX, canonical_json
from pausegate.evidence.seal import (
    CHUNKS,
    GENESIS,
    MANIFEST,
    SIGNATURE,
    BundleManifest,
    bundle_lines,
    chain_entries,
    chunk_name,
    inflating_reader,
    parse_manifest,
    parse_signature,
)
from pausegate.models.base import Model

_READ_BLOCK = 1 << 20
MAX_CHAIN_DEPTH = 10_000


class Problem(Model):
    """One thing wrong with a bundle."""

    file: str = Field(description="Path relative to the verified bundle's parent directory.")
    entry: int | None = Field(default=None, description="Manifest entry index, when it concerns one.")
    message: str


class VerificationReport(Model):
    """The outcome of verifying one bundle (``ok`` only if ``problems`` is empty)."""

    bundle: str
    key: str | None = None
    manifest_sha256: str | None = None
    public_key_sha256: str | None = None
    records: int = 0
    chunks: int = 0
    size_bytes: int = 0
    first_at: str | None = None
    last_at: str | None = None
    chain_index: int | None = None
    previous_bundles_checked: int = 0
    problems: list[Problem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_public_key(bundle: Path) -> Path | None:
    """The store's public key file, looked for in the bundle's ancestors."""
    for parent in bundle.resolve().parents:
        candidate = parent / keymod.PUBLIC_KEY_FILENAME
        if candidate.is_file():
            return candidate
    return None


def bundle_dir(path: Path) -> Path:
    """Accept the bundle directory or its manifest file."""
    path = Path(path)
    return path.parent if path.name == MANIFEST else path


class _Checker:
    def __init__(self, bundle: Path, public_key: Ed25519PublicKey) -> None:
        self.bundle = bundle
        self.base = bundle.parent
        self.public_key = public_key
        self.problems: list[Problem] = []

    def problem(self, path: Path, message: str, entry: int | None = None) -> None:
        try:
            name = str(path.relative_to(self.base))
        except ValueError:
            name = str(path)
        self.problems.append(Problem(file=name, entry=entry, message=message))

    def manifest(self, bundle: Path) -> tuple[BundleManifest, bytes] | None:
        """Load and authenticate a bundle's manifest; None (with problems recorded) if it cannot
        be trusted at all."""
        manifest_path, sig_path = bundle / MANIFEST, bundle / SIGNATURE
        try:
            data = manifest_path.read_bytes()
        except FileNotFoundError:
            self.problem(manifest_path, "manifest is missing")
            return None
        try:
            sig_data = sig_path.read_bytes()
            sig_file, signature = parse_signature(sig_data)
            # the signature file itself must be exactly as sealed: non-canonical base64 or JSON
            # would decode to the same signature while the bytes differ
            if canonical_json(sig_file.model_dump(mode="json")) != sig_data or (
                base64.b64encode(signature).decode() != sig_file.signature
            ):
                self.problem(sig_path, "signature file is not in its sealed form (modified)")
            if sig_file.key_sha256 != keymod.fingerprint(self.public_key):
                self.problem(
                    sig_path,
                    f"signed by key {sig_file.key_sha256}, "
                    f"verifying with {keymod.fingerprint(self.public_key)}",
                )
        except FileNotFoundError:
            self.problem(sig_path, "signature is missing")
            signature = None
        except EvidenceError as exc:
            self.problem(sig_path, str(exc))
            signature = None
        if signature is not None and not keymod.verify_signature(self.public_key, signature, data):
            self.problem(
                sig_path,
                "signature does not verify with public key "
                f"{keymod.fingerprint(self.public_key)} "
                "(manifest altered, replaced, or signed by another key)",
            )
        try:
            manifest = parse_manifest(data)
        except EvidenceError as exc:
            self.problem(manifest_path, str(exc))
            return None
        expected_name = manifest.key.rsplit("/", 1)[-1] + BUNDLE_SUFFIX
        if bundle.name != expected_name:
            self.problem(
                manifest_path, f"manifest is for key {manifest.key!r}, not for directory {bundle.name!r}"
            )
        return manifest, data

    def structure(self, manifest: BundleManifest, manifest_path: Path) -> None:
        """The manifest's own arithmetic and hash chain."""
        entries = manifest.entries
        for i, entry in enumerate(entries):
            if entry.index != i:
                self.problem(manifest_path, f"entry at position {i} has index {entry.index} (reordered)", i)
        start = manifest.previous.manifest_sha256 if manifest.previous else GENESIS
        relinked, head = chain_entries(entries, start)
        for i, (entry, expected) in enumerate(zip(entries, relinked, strict=True)):
            if entry.prev != expected.prev:
                self.problem(
                    manifest_path, "entry's prev does not match the digest of the entry before it", i
                )
        if manifest.head != head:
            self.problem(manifest_path, "head does not match the digest of the last entry")
        if manifest.chunk_count != len(entries):
            self.problem(manifest_path, f"chunk_count {manifest.chunk_count} but {len(entries)} entries")
        if manifest.records != sum(e.records for e in entries):
            self.problem(manifest_path, "record total does not match the entries")
        if manifest.size_bytes != sum(e.size_bytes for e in entries):
            self.problem(manifest_path, "size total does not match the entries")
        if (manifest.previous is None) != (manifest.chain_index == 0):
            self.problem(
                manifest_path, f"chain_index {manifest.chain_index} inconsistent with previous bundle link"
            )

    def chunks(self, manifest: BundleManifest) -> None:
        chunk_dir = self.bundle / CHUNKS
        encoding = manifest.encoding
        expected = {chunk_name(e.sha256, encoding) for e in manifest.entries}
        checked: dict[str, tuple[int, int] | None] = {}
        for entry in manifest.entries:
            path = chunk_dir / chunk_name(entry.sha256, encoding)
            if entry.sha256 not in checked:
                checked[entry.sha256] = self._chunk(path, entry.sha256, entry.index, encoding, entry.size_bytes)
            measured = checked[entry.sha256]
            if measured is None:
                continue
            size, lines = measured
            if size != entry.size_bytes:
                self.problem(path, f"size {size} bytes of records, manifest says {entry.size_bytes}", entry.index)
            elif lines != entry.records:
                self.problem(path, f"{lines} records, manifest says {entry.records}", entry.index)
        if chunk_dir.is_dir():
            for path in sorted(chunk_dir.iterdir()):
                if path.name not in expected:
                    self.problem(path, "file is not listed in the manifest (added)")
        elif manifest.entries:
            self.problem(chunk_dir, "chunk directory is missing")
        allowed = {MANIFEST, SIGNATURE, CHUNKS}
        for path in sorted(self.bundle.iterdir()):
            if path.name not in allowed:
                self.problem(path, "file is not part of a bundle (added)")

    def _chunk(self, path: Path, digest: str, index: int, encoding: str, expected_size: int) -> tuple[int, int] | None:
        """(bytes of records, records) of a chunk whose stored bytes match ``digest``."""
        h = hashlib.sha256()
        size = lines = 0
        plain = encoding == "jsonl"
        try:
            with path.open("rb") as f:
                while block := f.read(_READ_BLOCK):
                    h.update(block)
                    size += len(block)
                    if plain:
                        lines += block.count(b"\n")
        except FileNotFoundError:
            self.problem(path, "chunk is missing (deleted or renamed)", index)
            return None
        if h.hexdigest() != digest:
            self.problem(path, f"content digest {h.hexdigest()} does not match its name (modified)", index)
            return None
        return (size, lines) if plain else self._inflated(path, index, expected_size)

    def _inflated(self, path: Path, index: int, expected_size: int) -> tuple[int, int] | None:
        # Streamed and cut off just past the manifest's size: a crafted chunk must not be
        # able to make verification exhaust memory or disk.
        size = lines = 0
        try:
            with path.open("rb") as f, inflating_reader(f) as reader:
                while block := reader.read(_READ_BLOCK):
                    size += len(block)
                    lines += block.count(b"\n")
                    if size > expected_size:
                        self.problem(path, f"decompresses to more than the manifest's {expected_size} bytes", index)
                        return None
        except zstandard.ZstdError as exc:
            self.problem(path, f"chunk does not decompress: {exc}", index)
            return None
        return size, lines

    def ancestors(self, manifest: BundleManifest) -> int:
        """Walk the chain back to the pause's first bundle, authenticating each manifest and
        checking each link's digest (an earlier bundle's chunks are checked by verifying it)."""
        checked = 0
        current = manifest
        seen: set[str] = set()
        while current.previous is not None and checked < MAX_CHAIN_DEPTH:
            prev = current.previous
            name = prev.key.rsplit("/", 1)[-1] + BUNDLE_SUFFIX
            path = self.bundle.parent / name
            loaded = self.manifest(path)
            if loaded is None:
                self.problem(path / MANIFEST, f"previous bundle {prev.key!r} cannot be read: chain broken")
                return checked
            prev_manifest, data = loaded
            digest = hashlib.sha256(data).hexdigest()
            if digest != prev.manifest_sha256:
                self.problem(
                    path / MANIFEST,
                    f"previous bundle's manifest digest {digest} does not match the link "
                    f"{prev.manifest_sha256}: chain broken",
                )
                return checked
            if digest in seen:
                self.problem(path / MANIFEST, "chain loops")
                return checked
            seen.add(digest)
            if prev_manifest.chain_index != current.chain_index - 1:
                self.problem(path / MANIFEST, "chain_index does not decrease by one along the chain")
            checked += 1
            current = prev_manifest
        return checked


def verify_bundle(
    path: Path | str, public_key: Ed25519PublicKey | Path | str | None = None
) -> VerificationReport:
    """Verify a bundle offline. ``public_key`` defaults to the store's public key file found
    above the bundle (compare the reported fingerprint with the published one)."""
    bundle = bundle_dir(Path(path))
    report = VerificationReport(bundle=str(bundle))
    if isinstance(public_key, Ed25519PublicKey):
        key = public_key
    else:
        key_path = Path(public_key) if public_key is not None else find_public_key(bundle)
        if key_path is None:
            return report.model_copy(
                update={"problems": [Problem(file=str(bundle), message="no public key given and none found")]}
            )
        try:
            key = keymod.load_public_key(key_path)
        except (OSError, ValueError, EvidenceError) as exc:
            return report.model_copy(
                update={"problems": [Problem(file=str(key_path), message=f"cannot load public key: {exc}")]}
            )
    checker = _Checker(bundle, key)
    if not bundle.is_dir():
        checker.problem(bundle, "bundle directory does not exist")
        return report.model_copy(update={"problems": checker.problems})
    loaded = checker.manifest(bundle)
    if loaded is None:
        return report.model_copy(
            update={"problems": checker.problems, "public_key_sha256": keymod.fingerprint(key)}
        )
    manifest, data = loaded
    checker.structure(manifest, bundle / MANIFEST)
    checker.chunks(manifest)
    ancestors = checker.ancestors(manifest)
    return report.model_copy(
        update={
            "key": manifest.key,
            "manifest_sha256": hashlib.sha256(data).hexdigest(),
            "public_key_sha256": keymod.fingerprint(key),
            "records": manifest.records,
            "chunks": manifest.chunk_count,
            "size_bytes": manifest.size_bytes,
            "first_at": manifest.first_at,
            "last_at": manifest.last_at,
            "chain_index": manifest.chain_index,
            "previous_bundles_checked": ancestors,
            "problems": checker.problems,
        }
    )


def verified_records(path: Path | str, report: VerificationReport) -> Iterator[bytes]:
    """The record lines of a bundle ``report`` found intact, each chunk checked against the
    manifest again as it is read (the files could change between verifying and reading)."""
    bundle = bundle_dir(Path(path))
    if not report.ok or report.manifest_sha256 is None:
        raise EvidenceError(f"{bundle} did not verify; its records are not read")
    data = (bundle / MANIFEST).read_bytes()
    if hashlib.sha256(data).hexdigest() != report.manifest_sha256:
        raise EvidenceError(f"{bundle / MANIFEST} changed after it was verified")
    yield from bundle_lines(bundle, parse_manifest(data))
