"""Offline verification of a sealed bundle or a signed document against itself: signature,
entry chain, every chunk, the link to the bundles sealed before it, the signed chain head
(so that the newest bundle cannot be deleted unnoticed), and that the manifest (or the
document's signature) names the key its path gives (so that another pause's evidence copied
over this pause's paths is refused).

Needs nothing but the evidence (a bundle with its sibling bundles and chain head) and a
public key it can trust: one given explicitly, or the one beside the evidence if its
fingerprint is pinned (configuration, the pause's record or its report). A key found
beside the evidence and pinned nowhere proves nothing, since whoever can replace the
evidence can replace it too.

This is the check against itself; ``pausegate.evidence.anchor`` checks evidence against the
digests the pause recorded, which is what tells a genuine file from another genuine file.
Every problem is reported with the file and, where it applies, the manifest entry.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Literal

import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field

from pausegate.errors import ConfigError, EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.bundle import (
    CHAIN_HEAD,
    CHUNKS,
    GENESIS,
    MANIFEST,
    SIGNATURE,
    BundleManifest,
    chain_entries,
    chunk_name,
    document_signature_problem,
    head_signature_problem,
    inflating_reader,
    parse_head,
    parse_manifest,
    parse_signature,
    signature_json,
)
from pausegate.evidence.chain import parent_key
from pausegate.evidence.files import BUNDLE_SUFFIX, DOCUMENT_SUFFIX, SIGNATURE_SUFFIX, validate_key
from pausegate.evidence.local_bundles import bundle_lines
from pausegate.models.base import Model

_READ_BLOCK = 1 << 20
MAX_CHAIN_DEPTH = 10_000


KEYLESS_SIGNATURE = "its signature was made before signatures named their key: where it lies rests on the record"
UNSIGNED_HEAD = (
    f"{CHAIN_HEAD} is unsigned (written before heads were signed): that no newer bundle was deleted rests on the "
    "record alone"
)


class Problem(Model):
    """One thing wrong with a bundle."""

    file: str = Field(description="Path relative to the verified bundle's parent directory.")
    entry: int | None = Field(default=None, description="Manifest entry index, when it concerns one.")
    message: str


class VerificationReport(Model):
    """The outcome of verifying one bundle or document (``ok`` only if ``problems`` is empty)."""

    bundle: str = Field(description="The bundle directory or document verified.")
    kind: Literal["bundle", "document"] = "bundle"
    key: str | None = None
    sha256: str | None = Field(
        default=None, description="What a pause records: the manifest's digest (bundles) or the document's."
    )
    manifest_sha256: str | None = None
    public_key_sha256: str | None = None
    records: int = 0
    chunks: int = 0
    size_bytes: int = 0
    first_at: str | None = None
    last_at: str | None = None
    chain_index: int | None = None
    previous_bundles_checked: int = 0
    record: str | None = Field(
        default=None, description="The pause record it was checked against; None: checked against itself only."
    )
    notes: list[str] = Field(default_factory=list, description="What the check could not establish.")
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


def is_document(path: Path) -> bool:
    """Whether ``path`` names a signed document (``<key>.json``) rather than a bundle."""
    path = Path(path)
    return path.name.endswith(DOCUMENT_SUFFIX) and path.name != MANIFEST and not path.is_dir()


def configured_fingerprints() -> frozenset[str]:
    """The signing key fingerprint the deployment's configuration pins (empty if none)."""
    from pausegate.config import load_settings

    try:
        pinned = load_settings().evidence.signing_key_fingerprint
    except ConfigError:
        return frozenset()
    return frozenset({pinned}) if pinned else frozenset()


def trusted_key(
    near: Path, public_key: Ed25519PublicKey | Path | str | None, pinned: Collection[str] | None
) -> tuple[Ed25519PublicKey | None, Problem | None]:
    """The key to verify with: ``public_key`` if given (whoever passes it vouches for it), else the
    one beside the evidence above ``near``, only if its fingerprint is in ``pinned`` (None: the
    configuration's pin)."""
    if isinstance(public_key, Ed25519PublicKey):
        return public_key, None
    if public_key is not None:
        key_path = Path(public_key)
    else:
        found = find_public_key(near)
        if found is None:
            return None, Problem(file=str(near), message="no public key given and none found")
        key_path = found
    try:
        key = keymod.load_public_key(key_path)
    except (OSError, ValueError, EvidenceError) as exc:
        return None, Problem(file=str(key_path), message=f"cannot load public key: {exc}")
    if public_key is not None:
        return key, None
    pins = frozenset(pinned) if pinned is not None else configured_fingerprints()
    fingerprint = keymod.fingerprint(key)
    if fingerprint in pins:
        return key, None
    if pins:
        why = (
            f"public key beside the evidence has fingerprint {fingerprint}, not the pinned "
            f"{', '.join(sorted(pins))}: it was replaced (or the evidence is another deployment's)"
        )
    else:
        why = (
            f"public key beside the evidence (fingerprint {fingerprint}) is pinned nowhere: no "
            "evidence.signing_key_fingerprint configured and no record or report consulted, and whoever "
            "can replace the evidence can replace this key; pass --public-key with the published key"
        )
    return None, Problem(file=str(key_path), message=why)


def located_key_problem(path: Path, key: str, suffix: str, root: Path | None) -> str | None:
    """Why ``path`` is not where the evidence key ``key`` lies (None if it is). Without ``root``
    the path's last segments must spell the key; with it, the whole path must."""
    try:
        parts = validate_key(key)
    except EvidenceError as exc:
        return str(exc)
    expected = (*parts[:-1], parts[-1] + suffix)
    actual = Path(path).absolute().parts
    here = "/".join(actual[-len(expected):]).removesuffix(suffix)
    if actual[-len(expected):] != expected:
        return f"names key {key!r}, but lies at {here!r}: copied from elsewhere"
    if root is not None and Path(path).absolute() != Path(root).absolute().joinpath(*expected):
        return f"names key {key!r}, but lies at {path}, not under the evidence directory {root}"
    return None


class _Checker:
    def __init__(self, bundle: Path, public_key: Ed25519PublicKey, root: Path | None = None) -> None:
        self.bundle = bundle
        self.base = bundle.parent
        self.public_key = public_key
        self.root = root
        self.problems: list[Problem] = []
        self.notes: list[str] = []

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
        if not bundle.is_dir():
            self.problem(bundle, "bundle is missing (deleted or renamed)")
            return None
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
            if signature_json(sig_file) != sig_data or sig_file.key is not None or (
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
        misplaced = located_key_problem(bundle, manifest.key, BUNDLE_SUFFIX, self.root)
        if misplaced is not None:
            self.problem(manifest_path, f"manifest {misplaced}")
        elif manifest.pause != parent_key(manifest.key):
            self.problem(
                manifest_path, f"manifest names pause {manifest.pause!r} but key {manifest.key!r} (altered)"
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
            if parent_key(prev.key) != parent_key(current.key):
                self.problem(
                    self.bundle / MANIFEST, f"previous bundle {prev.key!r} is not in this chain: chain broken"
                )
                return checked
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


    def head(self, manifest: BundleManifest, digest: str) -> None:
        """The chain's signed head must name this bundle or a later one whose links lead back to
        it: a deleted newest bundle leaves a head naming what is gone, a deleted head is missing."""
        head_path = self.base / CHAIN_HEAD
        try:
            head = parse_head(head_path.read_bytes())
        except FileNotFoundError:
            self.problem(head_path, "chain head is missing (deleted?): nothing shows which bundle is the newest")
            return
        except EvidenceError as exc:
            self.problem(head_path, str(exc))
            return
        if head.signature is None:
            self.notes.append(UNSIGNED_HEAD)
        elif (why := head_signature_problem(self.public_key, head)) is not None:
            self.problem(head_path, why)
        chain = parent_key(manifest.key)
        if parent_key(head.key) != chain:
            self.problem(
                head_path, f"chain head names {head.key!r}, outside this chain {chain!r}: copied from elsewhere"
            )
            return
        cursor_key, cursor_digest = head.key, head.manifest_sha256
        for _ in range(MAX_CHAIN_DEPTH):
            if cursor_digest == digest:
                return
            path = self.base / (cursor_key.rsplit("/", 1)[-1] + BUNDLE_SUFFIX)
            loaded = self.manifest(path)
            if loaded is None:
                self.problem(
                    head_path, f"chain head names {cursor_key!r}, which is gone: a newer bundle was deleted"
                )
                return
            newer, data = loaded
            if hashlib.sha256(data).hexdigest() != cursor_digest:
                self.problem(
                    path / MANIFEST,
                    "manifest digest does not match the link to it from the chain head: replaced",
                )
                return
            if newer.previous is None or parent_key(newer.previous.key) != chain:
                self.problem(head_path, f"the chain from its head {head.key!r} does not lead back to this bundle")
                return
            cursor_key, cursor_digest = newer.previous.key, newer.previous.manifest_sha256
        self.problem(head_path, "the chain from its head is longer than any chain verified")


def verify_bundle(
    path: Path | str,
    public_key: Ed25519PublicKey | Path | str | None = None,
    *,
    pinned: Collection[str] | None = None,
    root: Path | None = None,
) -> VerificationReport:
    """Verify a bundle offline against itself.

    ``public_key`` is trusted as given. Without it, the store's public key file found above the
    bundle is used only if its fingerprint is in ``pinned`` (None: the configuration's
    ``evidence.signing_key_fingerprint``); otherwise verification fails saying so. With
    ``root`` (the evidence directory) the bundle must lie exactly where its key says."""
    bundle = bundle_dir(Path(path))
    report = VerificationReport(bundle=str(bundle))
    key, refused = trusted_key(bundle, public_key, pinned)
    if key is None:
        assert refused is not None
        return report.model_copy(update={"problems": [refused]})
    checker = _Checker(bundle, key, root)
    if not bundle.is_dir():
        checker.problem(bundle, "bundle directory does not exist")
        return report.model_copy(update={"problems": checker.problems})
    loaded = checker.manifest(bundle)
    if loaded is None:
        return report.model_copy(
            update={"problems": checker.problems, "public_key_sha256": keymod.fingerprint(key)}
        )
    manifest, data = loaded
    digest = hashlib.sha256(data).hexdigest()
    checker.structure(manifest, bundle / MANIFEST)
    checker.chunks(manifest)
    ancestors = checker.ancestors(manifest)
    checker.head(manifest, digest)
    return report.model_copy(
        update={
            "key": manifest.key,
            "sha256": digest,
            "manifest_sha256": digest,
            "public_key_sha256": keymod.fingerprint(key),
            "records": manifest.records,
            "chunks": manifest.chunk_count,
            "size_bytes": manifest.size_bytes,
            "first_at": manifest.first_at,
            "last_at": manifest.last_at,
            "chain_index": manifest.chain_index,
            "previous_bundles_checked": ancestors,
            "notes": checker.notes,
            "problems": checker.problems,
        }
    )


def verify_document(
    path: Path | str,
    public_key: Ed25519PublicKey | Path | str | None = None,
    *,
    pinned: Collection[str] | None = None,
    root: Path | None = None,
) -> VerificationReport:
    """Verify a signed document (``<key>.json`` and its ``.sig``) offline against itself: signed
    with a trusted key (as for ``verify_bundle``) for the key its path gives."""
    document = Path(path)
    sig_path = document.with_name(document.name + SIGNATURE_SUFFIX)
    report = VerificationReport(bundle=str(document), kind="document")
    key, refused = trusted_key(document, public_key, pinned)
    if key is None:
        assert refused is not None
        return report.model_copy(update={"problems": [refused]})
    problems: list[Problem] = []
    notes: list[str] = []

    def problem(at: Path, message: str) -> None:
        problems.append(Problem(file=at.name, message=message))

    update: dict[str, object] = {"public_key_sha256": keymod.fingerprint(key)}
    try:
        data = document.read_bytes()
    except FileNotFoundError:
        problem(document, "document is missing (deleted or renamed)")
        return report.model_copy(update={**update, "problems": problems})
    update["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        sig_file, signature = parse_signature(sig_path.read_bytes())
    except FileNotFoundError:
        problem(sig_path, "signature is missing")
        return report.model_copy(update={**update, "problems": problems})
    except EvidenceError as exc:
        problem(sig_path, str(exc))
        return report.model_copy(update={**update, "problems": problems})
    if sig_file.key is not None:
        evidence_key = sig_file.key
        misplaced = located_key_problem(document, evidence_key, DOCUMENT_SUFFIX, root)
        if misplaced is not None:
            problem(sig_path, f"signature {misplaced}")
    elif root is not None:
        try:
            relative = document.absolute().relative_to(Path(root).absolute())
        except ValueError:
            problem(document, f"lies outside the evidence directory {root}")
            return report.model_copy(update={**update, "problems": problems})
        evidence_key = relative.as_posix().removesuffix(DOCUMENT_SUFFIX)
        notes.append(KEYLESS_SIGNATURE)
    else:
        evidence_key = document.name.removesuffix(DOCUMENT_SUFFIX)
        notes.append(KEYLESS_SIGNATURE)
    why = document_signature_problem(key, sig_file, signature, sig_file.key or evidence_key, data)
    if why is not None:
        problem(sig_path, why)
    return report.model_copy(update={**update, "key": evidence_key, "notes": notes, "problems": problems})


def unvouched_legacy(report: VerificationReport) -> list[Problem]:
    """The legacy forms ``report`` noted (a document signature that does not name its key, a chain head
    written before heads were signed) as problems: for a verifier that no record of the pause vouched
    for. A signature of the bare document is one any document of the deployment could lend, and an
    unsigned head anyone can write: alone they prove nothing."""
    found: list[Problem] = []
    if KEYLESS_SIGNATURE in report.notes:
        found.append(Problem(
            file=Path(report.bundle).name + SIGNATURE_SUFFIX,
            message="signed before signatures named their key, and no record of its pause vouches for it: "
            "where it lies is not proved",
        ))
    if UNSIGNED_HEAD in report.notes:
        found.append(Problem(
            file=CHAIN_HEAD,
            message="unsigned (written before heads were signed), and no record of its pause vouches for the "
            "chain: that no newer bundle was deleted is not proved",
        ))
    return found


def verify_evidence(
    path: Path | str,
    public_key: Ed25519PublicKey | Path | str | None = None,
    *,
    pinned: Collection[str] | None = None,
    root: Path | None = None,
) -> VerificationReport:
    """A bundle (its directory or manifest) or a signed document, whichever ``path`` names."""
    if is_document(Path(path)):
        return verify_document(path, public_key, pinned=pinned, root=root)
    return verify_bundle(path, public_key, pinned=pinned, root=root)


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
