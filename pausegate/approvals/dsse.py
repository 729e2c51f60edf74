"""DSSE (Dead Simple Signing Envelope): the pre-authentication encoding every signature covers, written once.

``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths in ASCII decimal.
An SSH key signs these bytes; a passkey signs over their SHA-256 as its WebAuthn challenge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from pausegate.models.signatures import MAX_ENVELOPE_PAYLOAD, DsseEnvelope, DsseSignature

IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    """An envelope that cannot be read: not base64, too large, the wrong payload type."""


def pae(payload_type: str, body: bytes) -> bytes:
    """The pre-authentication encoding of ``body``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def challenge(payload_type: str, body: bytes) -> bytes:
    """What a passkey signs for ``body``: SHA-256 of its pre-authentication encoding."""
    return hashlib.sha256(pae(payload_type, body)).digest()


def b64decode(text: str, what: str, *, limit: int) -> bytes:
    """Strict base64 (standard or URL-safe, padding optional), refusing anything over ``limit`` bytes."""
    if len(text) > limit * 4 // 3 + 4:
        raise EnvelopeError(f"{what} is larger than {limit} bytes")
    cleaned = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not base64") from None


def payload(envelope: DsseEnvelope) -> bytes:
    """The envelope's payload bytes, checked to be an in-toto statement's."""
    if envelope.payloadType != IN_TOTO_PAYLOAD:
        raise EnvelopeError(f"payload type {envelope.payloadType[:60]!r} is not {IN_TOTO_PAYLOAD}")
    return b64decode(envelope.payload, "the envelope's payload", limit=MAX_ENVELOPE_PAYLOAD)


def envelope(body: bytes, keyid: str, signature: bytes) -> DsseEnvelope:
    """An envelope of an in-toto statement ``body`` with one signature."""
    return DsseEnvelope(payloadType=IN_TOTO_PAYLOAD, payload=base64.b64encode(body).decode(),
                        signatures=[DsseSignature(keyid=keyid, sig=base64.b64encode(signature).decode())])
