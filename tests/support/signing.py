"""Keys people hold, made in the test: SSH keys by ``ssh-keygen``, and a software passkey that answers a
WebAuthn assertion the way an authenticator does (ECDSA P-256, COSE key, authenticator data, client data)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pausegate.approvals import dsse, passkey, sshsig
from pausegate.approvals.statement import ApprovalStatement
from pausegate.cli.ssh_signing import sign_statement
from pausegate.models.signatures import DsseEnvelope, EnrolledKey

ENROLLED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RP_ID = "localhost"
ORIGIN = "http://localhost:8000"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SshKey:
    """An SSH key pair made by ssh-keygen."""

    path: Path
    blob: bytes

    @classmethod
    def make(cls, directory: Path, name: str, kind: str = "ed25519") -> SshKey:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)], check=True,
                       timeout=60)
        return cls(path, sshsig.key_blob(path.with_name(name + ".pub").read_text()))

    @property
    def key_id(self) -> str:
        return sshsig.key_id(self.blob)

    def enrolled(self, holder: str, *, by: str | None = None, confirmed_by: tuple[str, ...] = ("local:ada",),
                 at: datetime = ENROLLED) -> EnrolledKey:
        return EnrolledKey(key_id=self.key_id, kind="ssh", holder=holder,
                           public_key=base64.b64encode(self.blob).decode(), enrolled_at=at,
                           enrolled_by=by or holder, confirmed_by=list(confirmed_by))

    def sign(self, statement: ApprovalStatement) -> DsseEnvelope:
        return sign_statement(self.path, statement)


@dataclass
class SoftPasskey:
    """A passkey in software: what Chromium's virtual authenticator does, in a few lines."""

    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def cose(self) -> bytes:
        numbers = self.private.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.cose).hexdigest()

    def enrolled(self, holder: str, *, by: str | None = None, confirmed_by: tuple[str, ...] = ("local:ada",),
                 at: datetime = ENROLLED) -> EnrolledKey:
        return EnrolledKey(key_id=self.key_id, kind="passkey", holder=holder, public_key=b64url(self.cose),
                           credential_id=b64url(self.credential_id), enrolled_at=at, enrolled_by=by or holder,
                           confirmed_by=list(confirmed_by))

    def sign(self, statement: ApprovalStatement, *, origin: str = ORIGIN, rp_id: str = RP_ID,
             user_verified: bool = True) -> DsseEnvelope:
        body = statement.body()
        challenge = dsse.challenge(dsse.IN_TOTO_PAYLOAD, body)
        flags = 0x01 | (0x04 if user_verified else 0)
        authenticator_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + (1).to_bytes(4, "big")
        client_data = json.dumps({"type": "webauthn.get", "challenge": b64url(challenge), "origin": origin,
                                  "crossOrigin": False}).encode()
        signature = self.private.sign(authenticator_data + hashlib.sha256(client_data).digest(),
                                      ec.ECDSA(hashes.SHA256()))
        assertion = passkey.assertion_bytes(b64url(self.credential_id), b64url(authenticator_data),
                                            b64url(client_data), b64url(signature))
        return dsse.envelope(body, self.key_id, assertion)
