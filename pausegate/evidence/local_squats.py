"""What lies at a key's names in a local evidence directory, judged by the store's key (``squatting``).

In a directory more than the object's own names can block a write: a file or a link where a
directory of the key belongs, or, in the directory the object goes into, a lock or chain head that
is not a plain file the store could have made. Each is a reason to write under a fresh name, at the
segment it blocks; what lies there is listed, never followed and never read as evidence.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import (
    CHAIN_HEAD,
    CHAIN_LOCK,
    MANIFEST,
    SIGNATURE,
    head_signature_problem,
    parse_head,
)
from pausegate.evidence.files import BUNDLE_SUFFIX, DOCUMENT_SUFFIX, SIGNATURE_SUFFIX, validate_key
from pausegate.evidence.squatting import (
    Squat,
    describe_path,
    document_vouched,
    manifest_vouched,
    own_orphan_signature,
)
from pausegate.models.evidence import PlantedObject

log = structlog.get_logger(__name__)

LOCK = ".lock"


def read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (a link is not followed, a FIFO not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _names(root: Path, key: str) -> tuple[tuple[str, ...], Path, Path, Path]:
    parts = validate_key(key)
    base = root.joinpath(*parts)
    document = base.with_name(parts[-1] + DOCUMENT_SUFFIX)
    return parts, document, document.with_name(document.name + SIGNATURE_SUFFIX), base.with_name(
        parts[-1] + BUNDLE_SUFFIX)


def _blocked_ancestor(root: Path, parts: tuple[str, ...]) -> Squat | None:
    """The first directory of the key that is not a plain directory (a file or a link put there)."""
    for index in range(len(parts) - 1):
        path = root.joinpath(*parts[: index + 1])
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return None  # created by the write, below as well
        if not stat.S_ISDIR(mode):
            return Squat(index, tuple(describe_path(root, path)))
    return None


def _control_plants(root: Path, parts: tuple[str, ...],
                    public_key: Ed25519PublicKey) -> tuple[list[PlantedObject], bool]:
    """Locks and chain heads in the object's directory that the store did not make, and whether one
    of them blocks the directory (a lock or head the store cannot open or replace: not a plain file).
    A plain file is only reported: a lock works whatever it holds, and the chain's rule passes over a
    head the store did not sign, which the next seal replaces."""
    if len(parts) < 2:
        return [], False
    directory = root.joinpath(*parts[:-1])
    plants: list[PlantedObject] = []
    blocking = False
    for name in (LOCK, CHAIN_LOCK, CHAIN_HEAD):
        path = directory / name
        if _exists(path) and not _control_file_ours(path, public_key):
            plants += describe_path(root, path)
            blocking = blocking or read_regular(path) is None
    return plants, blocking


def _squat(root: Path, parts: tuple[str, ...], public_key: Ed25519PublicKey,
           leaf: list[PlantedObject]) -> Squat | None:
    """Where the key must move: its directory if a lock or head planted there blocks it (then with what
    lies at its own names too), else its last segment if its names hold ``leaf``; or nowhere, with
    what was planted beside it reported."""
    control, blocking = _control_plants(root, parts, public_key)
    if blocking:
        return Squat(len(parts) - 2, tuple(control + leaf))
    if leaf:
        return Squat(len(parts) - 1, tuple(control + leaf))
    return Squat(None, tuple(control)) if control else None


def _control_file_ours(path: Path, public_key: Ed25519PublicKey) -> bool:
    data = read_regular(path)
    if data is None:
        return False
    if path.name != CHAIN_HEAD:
        return not data  # the store's locks are empty, only ever locked
    try:
        return head_signature_problem(public_key, parse_head(data)) is None
    except EvidenceError:
        return False


def bundle_is_own(bundle: Path, key: str, public_key: Ed25519PublicKey) -> bool:
    return manifest_vouched(public_key, key, read_regular(bundle / MANIFEST), read_regular(bundle / SIGNATURE))


def document_is_own(document: Path, signature: Path, key: str, public_key: Ed25519PublicKey) -> bool:
    data = read_regular(document)
    return data is not None and document_vouched(public_key, key, data, read_regular(signature))


def document_squat(root: Path, key: str, public_key: Ed25519PublicKey, data: bytes | None) -> Squat | None:
    """What blocks the document ``key`` (None: its names are free, or hold the store's own document)."""
    parts, document, signature, bundle = _names(root, key)
    if (blocked := _blocked_ancestor(root, parts)) is not None:
        return blocked
    plants: list[PlantedObject] = []
    if _exists(document):
        stored = read_regular(document)
        if stored is not None and (document_vouched(public_key, key, stored, read_regular(signature))
                                   or (data is not None and stored == data)):
            return None  # the store's own: written once, it stays where it is
        plants += describe_path(root, document)
        if _exists(signature):
            plants += describe_path(root, signature)
    elif _exists(signature):
        orphan = read_regular(signature)
        if orphan is None or not own_orphan_signature(public_key, key, orphan):
            plants += describe_path(root, signature)
    if _exists(bundle):
        if bundle_is_own(bundle, key, public_key):
            raise EvidenceError(f"evidence key {key!r} already holds a sealed bundle")
        plants += describe_path(root, bundle)
    return _squat(root, parts, public_key, plants)


def bundle_squat(root: Path, key: str, public_key: Ed25519PublicKey) -> Squat | None:
    """What blocks sealing ``key`` (None: its names are free, or hold the bundle the store sealed)."""
    parts, document, signature, bundle = _names(root, key)
    if (blocked := _blocked_ancestor(root, parts)) is not None:
        return blocked
    plants: list[PlantedObject] = []
    _remove_debris(bundle)
    if _exists(bundle):
        if bundle_is_own(bundle, key, public_key):
            return None  # sealed: a retry returns it
        plants += describe_path(root, bundle)
    if _exists(document):
        if document_is_own(document, signature, key, public_key):
            raise EvidenceError(f"evidence key {key!r} already holds a document")
        plants += describe_path(root, document)
    if _exists(signature):
        plants += describe_path(root, signature)
    return _squat(root, parts, public_key, plants)


def _remove_debris(bundle: Path) -> None:
    """A bundle directory without a manifest holds nothing anyone could take for evidence (bundles
    appear by rename once complete): debris of a crash, removed; what cannot be removed is a plant."""
    try:
        if not stat.S_ISDIR(bundle.lstat().st_mode) or _exists(bundle / MANIFEST):
            return
    except FileNotFoundError:
        return
    log.warning("evidence_incomplete_bundle_removed", path=str(bundle))
    shutil.rmtree(bundle, ignore_errors=True)


def holds_own(root: Path, key: str, public_key: Ed25519PublicKey) -> bool:
    """Whether ``key`` holds a document or a sealed bundle the store wrote for it."""
    _, document, signature, bundle = _names(root, key)
    return document_is_own(document, signature, key, public_key) or bundle_is_own(bundle, key, public_key)


def any_squat(root: Path, key: str, public_key: Ed25519PublicKey) -> Squat | None:
    """What blocks ``key``, document or bundle alike, for a reader looking for where the store wrote it."""
    try:
        return document_squat(root, key, public_key, None) or bundle_squat(root, key, public_key)
    except EvidenceError:
        return None
