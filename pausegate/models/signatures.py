"""Approvals signed by the approver: the DSSE envelope a statement travels in, the keys enrolled to people,
and the key ring a pause pins when it starts.

Everything here may enter workflow history: public keys, signatures and digests, never a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pausegate.models.base import Model

MAX_ENVELOPE_PAYLOAD = 16 * 1024
"""A statement is a few hundred bytes; anything near this is not one."""

MAX_SIGNATURE = 8 * 1024
"""An SSHSIG blob or a WebAuthn assertion (authenticator data, client data JSON, signature), base64."""

MAX_RING_KEYS = 200
"""The ring is carried in the pause's state, so in its history: a few hundred keys fit well inside a payload."""

KeyKind = Literal["ssh", "passkey"]


class DsseSignature(Model):
    """One signature of a DSSE envelope: which enrolled key (``keyid``) and the signature, base64."""

    keyid: str = Field(min_length=1, max_length=100)
    sig: str = Field(min_length=1, max_length=MAX_SIGNATURE)


class DsseEnvelope(Model):
    """A DSSE envelope (payload type, base64 payload, signatures) over an in-toto Statement."""

    payloadType: str = Field(max_length=100)
    payload: str = Field(min_length=1, max_length=MAX_ENVELOPE_PAYLOAD * 2)
    signatures: list[DsseSignature] = Field(min_length=1, max_length=1)


class EnrolledKey(Model):
    """A key enrolled to one person: what the enrollment log says of it when a pause pinned it."""

    key_id: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the public key's bytes.")
    kind: KeyKind
    holder: str = Field(min_length=1, max_length=512, description="The identity id of the person holding it.")
    holder_email: str | None = Field(default=None, max_length=320)
    public_key: str = Field(min_length=1, max_length=4096, description="ssh: the key's wire blob, base64; "
                            "passkey: the COSE public key, base64url.")
    credential_id: str | None = Field(default=None, max_length=1024, description="passkey: its credential id, "
                                      "base64url.")
    enrolled_at: datetime
    enrolled_by: str = Field(max_length=512)
    confirmed_by: list[str] = Field(default_factory=list, max_length=10)
    enrollment_line: str = Field(default="", max_length=64, description="SHA-256 of its enrollment log line.")


class KeyRing(Model):
    """The keys that may sign approvals for one pause, pinned when it started (keys enrolled later do
    not count for it), with where passkeys must have been used."""

    pinned_at: datetime
    log_lines: int = Field(default=0, ge=0, description="How many lines the enrollment log had when pinned.")
    log_last: str = Field(default="0" * 64, description="SHA-256 of its last line then.")
    rp_id: str | None = Field(default=None, max_length=253)
    origins: list[str] = Field(default_factory=list, max_length=10)
    keys: list[EnrolledKey] = Field(default_factory=list, max_length=MAX_RING_KEYS)

    def key(self, key_id: str) -> EnrolledKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


class SignoffRound(Model):
    """The sign-off as the workflow runs it for a pause begun with signed approvals: the pinned ring and
    the nonce of the current round (a new one whenever a plan is proposed or the review changes)."""

    ring: KeyRing | None = None
    round: int = 0
    nonce: str | None = None
    bound_to: str | None = Field(default=None, description="The approval digest and proposal time of the round.")


class ApprovalSignature(Model):
    """How an approval was signed: the envelope as sent, and the key that verified it (as enrolled)."""

    envelope: DsseEnvelope
    envelope_sha256: str
    key: EnrolledKey
    signed_at: datetime = Field(description="The time the approver's statement gives.")
