"""Names someone else wrote first: evidence goes under a fresh name, and what was planted is listed.

Every name the store writes follows from the pause's key (``layout``), which every caller of the
API sees, and a directory or bucket an insider can write to lets them create that name before the
store does. A write-once store would then refuse its own evidence for good (in a bucket with
compliance retention the planted object can never be removed), and the step waiting on it would
block until waived. So a name that holds anything the store did not write never blocks evidence:

- the store judges what lies there with its own key (a document or manifest it signed for that
  very key is its own; anything else is planted);
- it writes under an alternate name instead: the name with a token derived from the name and the
  signing key (``alternate_key``), which nobody without the key can compute before it appears, and
  which a retry of the same write computes again (so the write stays idempotent);
- the reference it returns names the alternate (``EvidenceRef.uri``) and lists what was planted
  (``EvidenceRef.plants``: name, size, digest, never its content), so the pause's record and its
  report carry the plant as an incident of its own, and the audit accepts exactly those objects.

References recorded before this rule, and every write that finds its name free, name the layout's
key as they always did.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pausegate.errors import EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.bundle import (
    document_signature_problem,
    manifest_signature_problem,
    parse_manifest,
    parse_signature,
)
from pausegate.evidence.files import validate_key
from pausegate.models.evidence import MAX_PLANTS, EvidenceRef, PlantedObject

log = structlog.get_logger(__name__)

ALTERNATE_DOMAIN = b"pausegate-evidence-alternate-name/1\n"
TOKEN_CHARS = 32
_MAX_SEGMENT = 128  # files._SEGMENT's bound
_HEX = frozenset("0123456789abcdef")
# A planted file is hashed only up to this size: a huge one must not make the write that finds it slow.
MAX_HASHED_BYTES = 256 * 1024 * 1024


def alternate_key(signing_key: Ed25519PrivateKey, key: str, index: int) -> str:
    """``key`` with its segment ``index`` replaced by ``<segment>.<token>``: the token is a digest of
    the key's signature over the key up to that segment (Ed25519 signs deterministically, so the
    same name always gives the same token, and only the key's holder can compute it)."""
    parts = list(validate_key(key))
    if not 0 <= index < len(parts):
        raise EvidenceError(f"evidence key {key!r}: no segment {index} to replace")
    prefix = "/".join(parts[: index + 1])
    token = hashlib.sha256(signing_key.sign(ALTERNATE_DOMAIN + prefix.encode())).hexdigest()[:TOKEN_CHARS]
    parts[index] = f"{parts[index][: _MAX_SEGMENT - TOKEN_CHARS - 1]}.{token}"
    return "/".join(parts)


def is_alternate_of(candidate: str, key: str) -> bool:
    """Whether ``candidate`` is ``key`` or one of its alternates (one segment with a token added):
    for a reader that knows only the layout's key (an offline report's)."""
    mine, theirs = candidate.split("/"), key.split("/")
    if len(mine) != len(theirs):
        return False
    changed = [(m, t) for m, t in zip(mine, theirs, strict=True) if m != t]
    if not changed:
        return True
    if len(changed) != 1:
        return False
    segment, original = changed[0]
    stem, dot, token = segment.rpartition(".")
    return (bool(dot) and len(token) == TOKEN_CHARS and set(token) <= _HEX
            and stem == original[: _MAX_SEGMENT - TOKEN_CHARS - 1])


@dataclass(frozen=True)
class Squat:
    """What the store did not write at a key's names: the segment of the key to replace (None: nothing
    blocks the key, what was planted beside it is only reported), and what lies there."""

    index: int | None
    plants: tuple[PlantedObject, ...]


@dataclass(frozen=True)
class Placement:
    """Where the store writes (or found) its object for a key, and what was planted at the layout's name."""

    key: str
    plants: tuple[PlantedObject, ...] = field(default=())

    @property
    def planted(self) -> list[PlantedObject] | None:
        return list(self.plants[:MAX_PLANTS]) or None


def place(key: str, squat: Squat | None, signing_key: Ed25519PrivateKey,
          squat_at: Callable[[str], Squat | None]) -> Placement:
    """Where to write ``key``'s object, given what ``squat_at`` finds at its names."""
    if squat is None:
        return Placement(key)
    if squat.index is None:
        for plant in squat.plants:
            log.warning("evidence_name_squatted", key=key, planted=plant.name, kind=plant.kind,
                        size_bytes=plant.size_bytes, sha256=plant.sha256)
        return Placement(key, squat.plants)
    fresh = alternate_key(signing_key, key, squat.index)
    blocked = squat_at(fresh)
    if blocked is not None and blocked.index is not None:
        # the token needs the signing key: something there means the key is no longer the deployment's alone
        raise EvidenceError(
            f"evidence key {key!r}: its names and the fresh name {fresh!r} both hold objects the store did not "
            "write; the signing key may have leaked"
        )
    for plant in squat.plants:
        log.warning("evidence_name_squatted", key=key, written_as=fresh, planted=plant.name, kind=plant.kind,
                    size_bytes=plant.size_bytes, sha256=plant.sha256)
    return Placement(fresh, squat.plants)


def with_plants(ref: EvidenceRef, plants: Iterable[PlantedObject]) -> EvidenceRef:
    listed = list(plants)[:MAX_PLANTS]
    return ref.model_copy(update={"plants": listed}) if listed else ref


# ------------------------------------------------------------------ whose is it


def document_vouched(public_key: Ed25519PublicKey, key: str, data: bytes, signature: bytes | None) -> bool:
    """Whether ``signature`` (a signature file's bytes) is the store's, for the document ``data`` under ``key``."""
    if signature is None:
        return False
    try:
        sig_file, raw = parse_signature(signature)
    except EvidenceError:
        return False
    return document_signature_problem(public_key, sig_file, raw, key, data) is None


def own_orphan_signature(public_key: Ed25519PublicKey, key: str, signature: bytes) -> bool:
    """Whether a signature with no document beside it looks like one an interrupted write of the store
    left (its key's fingerprint, for this key): replacing it is then harmless, whoever wrote it."""
    try:
        sig_file, _ = parse_signature(signature)
    except EvidenceError:
        return False
    return sig_file.key == key and sig_file.key_sha256 == keymod.fingerprint(public_key)


def manifest_vouched(public_key: Ed25519PublicKey, key: str, manifest: bytes | None, signature: bytes | None) -> bool:
    """Whether ``manifest`` is a bundle manifest the store signed for ``key``."""
    if manifest is None or manifest_signature_problem(public_key, signature, manifest) is not None:
        return False
    try:
        return parse_manifest(manifest).key == key
    except EvidenceError:
        return False


# ------------------------------------------------------------------ what lies in a directory


def describe_path(root: Path, path: Path) -> list[PlantedObject]:
    """What lies at ``path`` (never following a link, never opening anything but a regular file): a
    file by size and digest, a directory with the files inside it (bounded)."""
    out: list[PlantedObject] = []
    _describe(root, path, out)
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in sorted(dirnames) + sorted(filenames):
                if len(out) >= MAX_PLANTS:
                    return out
                _describe(root, Path(dirpath) / name, out)
    return out


def _describe(root: Path, path: Path, out: list[PlantedObject]) -> None:
    try:
        st = path.lstat()
    except OSError:
        return
    name = path.relative_to(root).as_posix()
    if stat.S_ISLNK(st.st_mode):
        out.append(PlantedObject(name=name, kind="symlink"))
    elif stat.S_ISDIR(st.st_mode):
        out.append(PlantedObject(name=name, kind="directory"))
    elif stat.S_ISREG(st.st_mode):
        out.append(PlantedObject(name=name, kind="file", size_bytes=st.st_size, sha256=_file_digest(path, st.st_size)))
    else:  # a FIFO or a device: opening it could block, so it is named, not read
        out.append(PlantedObject(name=name, kind="other"))


def _file_digest(path: Path, size: int) -> str | None:
    if size > MAX_HASHED_BYTES:
        return None
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def object_plant(name: str, data: bytes) -> PlantedObject:
    """An object someone put in the bucket, by name (under the prefix), size and digest."""
    return PlantedObject(name=name, kind="file", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


__all__ = [
    "Placement",
    "Squat",
    "alternate_key",
    "describe_path",
    "document_vouched",
    "is_alternate_of",
    "manifest_vouched",
    "object_plant",
    "own_orphan_signature",
    "place",
    "with_plants",
]
