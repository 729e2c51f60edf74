"""SSH signatures (the SSHSIG format ``ssh-keygen -Y sign`` writes), verified with ``cryptography``.

A signature covers ``"SSHSIG" || string(namespace) || string(reserved) || string(hash) || string(H(message))``;
the namespace keeps a signature made for one purpose from being taken for another. Keys: Ed25519,
ECDSA P-256/384/521, RSA (SHA-2 signatures only), and the hardware-backed ``sk-`` forms of Ed25519 and
ECDSA P-256, whose signatures must carry the authenticator's user-presence flag. Parsing is bounded:
every length is checked against what remains.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

NAMESPACE = "pausegate-approval"
"""The namespace approvals are signed under (``ssh-keygen -Y sign -n pausegate-approval``)."""

MAGIC = b"SSHSIG"
MAX_BLOB = 8 * 1024
_CURVES: dict[bytes, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    b"nistp256": (ec.SECP256R1(), hashes.SHA256()),
    b"nistp384": (ec.SECP384R1(), hashes.SHA384()),
    b"nistp521": (ec.SECP521R1(), hashes.SHA512()),
}
_SK_ED25519 = b"sk-ssh-ed25519@openssh.com"
_SK_ECDSA = b"sk-ecdsa-sha2-nistp256@openssh.com"
_USER_PRESENT = 0x01


class SshSigError(ValueError):
    """An SSH signature or key that cannot be read or does not verify."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise SshSigError("truncated")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def string(self) -> bytes:
        return self.take(self.u32())

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.at == len(self.data)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def key_blob(openssh_line: str) -> bytes:
    """The wire blob of a public key written as ``<type> <base64> [comment]``."""
    parts = openssh_line.strip().split()
    if len(parts) < 2 or len(parts[1]) > MAX_BLOB:
        raise SshSigError("not an OpenSSH public key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise SshSigError("the key is not base64") from None
    if _Reader(blob).string() != parts[0].encode():
        raise SshSigError("the key's type does not match its blob")
    return blob


def key_id(blob: bytes) -> str:
    """An enrolled key's id: SHA-256 of its wire blob."""
    return hashlib.sha256(blob).hexdigest()


def unarmor(text: str) -> bytes:
    """The SSHSIG blob inside ``-----BEGIN SSH SIGNATURE-----`` armor."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != "-----BEGIN SSH SIGNATURE-----" or lines[-1] != "-----END SSH SIGNATURE-----":
        raise SshSigError("not an armored SSH signature")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise SshSigError("the armored signature is not base64") from None


@dataclass(frozen=True)
class SshSignature:
    public_key: bytes
    namespace: bytes
    hash_algorithm: bytes
    signature: bytes


def parse(blob: bytes) -> SshSignature:
    """The parts of an SSHSIG blob."""
    if len(blob) > MAX_BLOB:
        raise SshSigError("the signature is too large")
    r = _Reader(blob)
    if r.take(6) != MAGIC or r.u32() != 1:
        raise SshSigError("not an SSHSIG version 1 signature")
    public_key, namespace, _reserved, hash_algorithm, signature = r.string(), r.string(), r.string(), r.string(), \
        r.string()
    if not r.done():
        raise SshSigError("trailing bytes after the signature")
    return SshSignature(public_key, namespace, hash_algorithm, signature)


def verify(blob: bytes, message: bytes, enrolled_key: bytes, *, namespace: str = NAMESPACE) -> None:
    """Raise ``SshSigError`` unless ``blob`` is a signature of ``message`` by ``enrolled_key`` (a wire blob)
    under ``namespace``."""
    try:
        sig = parse(blob)
        if sig.public_key != enrolled_key:
            raise SshSigError("signed by a key other than the enrolled one")
        if sig.namespace != namespace.encode():
            raise SshSigError(f"signed under namespace {sig.namespace[:40]!r}, not {namespace!r}")
        digest = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}.get(sig.hash_algorithm)
        if digest is None:
            raise SshSigError("unknown hash algorithm")
        signed = MAGIC + _string(namespace.encode()) + _string(b"") + _string(sig.hash_algorithm) + \
            _string(digest(message).digest())
        _verify_raw(enrolled_key, sig.signature, signed)
    except SshSigError:
        raise
    except (InvalidSignature, ValueError, OverflowError):
        raise SshSigError("the signature does not verify") from None


def _verify_raw(key: bytes, signature: bytes, signed: bytes) -> None:
    k, s = _Reader(key), _Reader(signature)
    key_type, sig_type = k.string(), s.string()
    if key_type == b"ssh-ed25519" and sig_type == b"ssh-ed25519":
        Ed25519PublicKey.from_public_bytes(k.string()).verify(s.string(), signed)
    elif key_type == b"ssh-rsa" and sig_type in (b"rsa-sha2-256", b"rsa-sha2-512"):
        e, n = k.mpint(), k.mpint()
        if n.bit_length() < 2048:
            raise SshSigError("RSA keys shorter than 2048 bits are refused")
        algorithm: hashes.HashAlgorithm = hashes.SHA256() if sig_type == b"rsa-sha2-256" else hashes.SHA512()
        rsa.RSAPublicNumbers(e, n).public_key().verify(s.string(), signed, padding.PKCS1v15(), algorithm)
    elif key_type.startswith(b"ecdsa-sha2-") and sig_type == key_type:
        curve, hash_algorithm = _CURVES.get(k.string(), (None, None))
        if curve is None or hash_algorithm is None:
            raise SshSigError("unknown curve")
        point = k.string()
        _ecdsa(curve, point, _Reader(s.string()), signed, hash_algorithm)
    elif key_type == _SK_ED25519 and sig_type == _SK_ED25519:
        public, application = k.string(), k.string()
        raw, flags, counter = s.string(), s.take(1), s.take(4)
        _require_presence(flags)
        Ed25519PublicKey.from_public_bytes(public).verify(raw, _sk_message(application, flags, counter, signed))
    elif key_type == _SK_ECDSA and sig_type == _SK_ECDSA:
        if k.string() != b"nistp256":
            raise SshSigError("unknown curve")
        point, application = k.string(), k.string()
        inner, flags, counter = s.string(), s.take(1), s.take(4)
        _require_presence(flags)
        _ecdsa(ec.SECP256R1(), point, _Reader(inner), _sk_message(application, flags, counter, signed),
               hashes.SHA256())
    else:
        raise SshSigError(f"key type {key_type[:40]!r} with signature type {sig_type[:40]!r} is not supported")


def _ecdsa(curve: ec.EllipticCurve, point: bytes, rs: _Reader, signed: bytes, algorithm: hashes.HashAlgorithm) -> None:
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        raise SshSigError("the key's point is not on its curve") from None
    public.verify(encode_dss_signature(rs.mpint(), rs.mpint()), signed, ec.ECDSA(algorithm))


def _require_presence(flags: bytes) -> None:
    if not flags[0] & _USER_PRESENT:
        raise SshSigError("the security key did not confirm the user's presence")


def _sk_message(application: bytes, flags: bytes, counter: bytes, signed: bytes) -> bytes:
    return hashlib.sha256(application).digest() + flags + counter + hashlib.sha256(signed).digest()
