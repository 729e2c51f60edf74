"""The deployment's Ed25519 signing key: created once, readable only by its owner.

The private key stays outside the evidence directory so that evidence can be copied
elsewhere for offline verification without copying the means to forge it; the public
key is written beside the evidence so a verifier finds it (and should compare its
fingerprint with one published out of band).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pausegate.errors import EvidenceError

log = structlog.get_logger(__name__)

PUBLIC_KEY_FILENAME = "evidence-signing-key.pub.pem"


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key at ``path`` (PEM, PKCS#8), created with mode 0600 if absent.

    Creation is race-free (O_EXCL): two workers starting at once end up with the same key.
    A key file readable by group or others is refused rather than silently used, because
    anyone who can read it can forge evidence.
    """
    path = Path(path)
    try:
        return _load_private(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_private(path)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("evidence_signing_key_created", path=str(path), fingerprint=fingerprint(key.public_key()))
    return key


def _load_private(path: Path) -> Ed25519PrivateKey:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EvidenceError(
            f"signing key {path} is accessible by group or others (mode {st.st_mode & 0o777:o})"
        )
    data = path.read_bytes()
    if not data:
        # an empty file is what a crash between O_EXCL creation and the write leaves behind
        raise EvidenceError(f"signing key {path} is empty")
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"signing key {path} is not an Ed25519 key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_public_key(key: Ed25519PublicKey, path: Path) -> None:
    """Write the public key as PEM; an existing different key at ``path`` is an error, since
    it would mean two deployments sign into the same evidence directory."""
    pem = public_pem(key)
    if path.exists():
        if path.read_bytes() != pem:
            raise EvidenceError(f"{path} holds a different public key than the signing key")
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key PEM is accepted too)."""
    data = Path(path).read_bytes()
    key: object
    if b"PRIVATE KEY" in data:
        key = serialization.load_pem_private_key(data, password=None)
        key = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError(f"{path} is not an Ed25519 key")
    return key


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes (as stored beside evidence in a bucket)."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise EvidenceError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError("not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: short enough to compare by eye or publish."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def verify_signature(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def pinned_fingerprint(config_path: Path, key_path: Path) -> str:
    """The fingerprint to pin in a configuration file the launcher rewrites on every start: the one
    pinned there before (so a signing key replaced since is refused, not re-pinned), else, on first
    start, that of the key at ``key_path`` (created now if missing)."""
    from pausegate.config import load_settings
    from pausegate.errors import ConfigError

    if config_path.exists():
        try:
            pinned = load_settings(config_path).evidence.signing_key_fingerprint
        except ConfigError as exc:
            log.warning("evidence_pin_unreadable", path=str(config_path), error=str(exc)[:500])
        else:
            if pinned:
                return pinned
    return fingerprint(load_or_create_signing_key(key_path).public_key())
