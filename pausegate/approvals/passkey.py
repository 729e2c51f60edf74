"""Passkeys: a WebAuthn assertion whose challenge is the statement's hashed pre-authentication encoding.

The DSSE signature of a passkey approval is the assertion itself (credential id, authenticator data,
client data JSON, signature; canonical JSON, base64). It verifies only where the challenge is
SHA-256 of ``PAE(payload type, statement)``, the origin is one the pause pinned, the authenticator data
carries the pinned RP ID's hash and the user-verified flag, and the enrolled COSE key made the signature.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from webauthn import verify_authentication_response
from webauthn.helpers.exceptions import WebAuthnException

from pausegate.canonical import canonical_json

MAX_ASSERTION = 6 * 1024
_FIELDS = ("credentialId", "authenticatorData", "clientDataJSON", "signature")


class PasskeyError(ValueError):
    """An assertion that cannot be read or does not verify."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion_bytes(credential_id: str, authenticator_data: str, client_data_json: str, signature: str) -> bytes:
    """The DSSE signature of a passkey approval, from the browser's assertion (each part base64url)."""
    return canonical_json({"credentialId": credential_id, "authenticatorData": authenticator_data,
                           "clientDataJSON": client_data_json, "signature": signature})


def _parts(signature: bytes) -> dict[str, str]:
    if len(signature) > MAX_ASSERTION:
        raise PasskeyError("the assertion is too large")
    try:
        document: Any = json.loads(signature)
    except (ValueError, RecursionError):
        raise PasskeyError("the assertion is not JSON") from None
    if not isinstance(document, dict) or sorted(document) != sorted(_FIELDS) or \
            not all(isinstance(v, str) for v in document.values()):
        raise PasskeyError(f"the assertion must hold exactly {', '.join(_FIELDS)}, as text")
    return document


def verify(signature: bytes, challenge: bytes, *, credential_id: str, public_key: str, rp_id: str,
           origins: list[str]) -> None:
    """Raise ``PasskeyError`` unless ``signature`` is an assertion by the enrolled credential over ``challenge``,
    made at one of ``origins`` for ``rp_id`` with the user verified."""
    parts = _parts(signature)
    if parts["credentialId"] != credential_id:
        raise PasskeyError("made with a credential other than the enrolled one")
    if not origins:
        raise PasskeyError("no origin is pinned for passkeys, so none can verify")
    try:
        verify_authentication_response(
            credential={"id": credential_id, "rawId": credential_id, "type": "public-key",
                        "response": {"authenticatorData": parts["authenticatorData"],
                                     "clientDataJSON": parts["clientDataJSON"], "signature": parts["signature"]}},
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=list(origins),
            credential_public_key=_b64url_decode(public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"the assertion does not verify: {str(exc)[:200]}") from None


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
