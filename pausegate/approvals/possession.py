"""Proof of possession at enrollment: an SSH key is enrolled only by someone who can sign with it.

The server issues a challenge naming who asked, for which key, and until when, signed with the
deployment's key, so any replica checks it without remembering it. The holder signs the challenge with
the key being enrolled (``ssh-keygen -Y sign -n pausegate-key-enrollment``): a namespace of its own, so
an enrollment proof is never an approval and an approval never an enrollment proof.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pausegate.approvals import sshsig
from pausegate.canonical import canonical_json

ENROLL_NAMESPACE = "pausegate-key-enrollment"
"""The namespace enrollment proofs are signed under; never ``sshsig.NAMESPACE``."""

CHALLENGE_PREFIX = "pausegate-key-enrollment-v1."
CHALLENGE_SECONDS = 300
MAX_CHALLENGE = 1024


class PossessionError(ValueError):
    """The proof does not show that the enrolling person holds the key; the message says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: Ed25519PrivateKey, actor_id: str, key_id: str, now: datetime,
          seconds: int = CHALLENGE_SECONDS) -> tuple[str, datetime]:
    """A challenge for ``actor_id`` to sign with key ``key_id``, and when it expires."""
    expires = now + timedelta(seconds=seconds)
    body = canonical_json({"actor": actor_id, "key_id": key_id, "expires": expires.isoformat(),
                           "nonce": _b64(os.urandom(16))})
    return CHALLENGE_PREFIX + _b64(body) + "." + _b64(key.sign(CHALLENGE_PREFIX.encode() + body)), expires


def check(public: Ed25519PublicKey, challenge: str, signature: str, *, actor_id: str, key_blob: bytes,
          now: datetime) -> None:
    """Raise ``PossessionError`` unless ``challenge`` was issued by this deployment to ``actor_id`` for the
    key ``key_blob``, has not expired, and ``signature`` (SSHSIG, armored or base64) signs it with that key
    under ``ENROLL_NAMESPACE``."""
    if len(challenge) > MAX_CHALLENGE or not challenge.startswith(CHALLENGE_PREFIX) or challenge.count(".") != 2:
        raise PossessionError("the challenge is not one this deployment issues (ask POST /v1/keys/ssh/challenge)")
    body_b64, sig_b64 = challenge[len(CHALLENGE_PREFIX):].split(".")
    try:
        body = _unb64(body_b64)
        public.verify(_unb64(sig_b64), CHALLENGE_PREFIX.encode() + body)
        fields = json.loads(body)
        issued_to, for_key = str(fields["actor"]), str(fields["key_id"])
        expires = datetime.fromisoformat(str(fields["expires"]))
    except (binascii.Error, ValueError, InvalidSignature, KeyError, TypeError):
        raise PossessionError("the challenge was not issued by this deployment") from None
    if issued_to != actor_id:
        raise PossessionError("the challenge was issued to someone else")
    if for_key != sshsig.key_id(key_blob):
        raise PossessionError("the challenge was issued for another key")
    if expires < now:
        raise PossessionError(f"the challenge expired at {expires.isoformat(timespec='seconds')}; ask for a new one")
    try:
        blob = sshsig.unarmor(signature) if signature.lstrip().startswith("-----BEGIN") \
            else base64.b64decode(signature, validate=True)
        sshsig.verify(blob, challenge.encode(), key_blob, namespace=ENROLL_NAMESPACE)
    except (sshsig.SshSigError, binascii.Error, ValueError) as exc:
        raise PossessionError(f"the key being enrolled did not sign the challenge: {str(exc)[:200]} (sign it with "
                              f"ssh-keygen -Y sign -n {ENROLL_NAMESPACE} -f <your key>)") from None
