"""One signed approval held against a pause: the statement, the key that signed it and the signature.

Pure and deterministic, so the workflow's update validator runs it (a refusal writes nothing) and the
offline verifier runs the same code over the evidence. Every refusal is an ``ActionRefused`` naming
what is wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from pausegate.approvals import dsse, passkey, sshsig
from pausegate.approvals.enrollment import why_not_counted
from pausegate.approvals.statement import ApprovalStatement, Expected, StatementError, differences, parse
from pausegate.errors import ActionRefused
from pausegate.models.signatures import DsseEnvelope, EnrolledKey, KeyRing

BAD_STATEMENT = "bad_statement"
"""The refusal code of an envelope or statement that is malformed or says something else."""
UNKNOWN_KEY = "unknown_key"
"""The refusal code of a signature by a key that does not count for this pause."""
BAD_SIGNATURE = "bad_signature"
"""The refusal code of a signature that does not verify."""


@dataclass(frozen=True)
class Verified:
    """A statement that verified, and the key that signed it."""

    statement: ApprovalStatement
    key: EnrolledKey
    envelope_sha256: str


def envelope_digest(envelope: DsseEnvelope) -> str:
    return hashlib.sha256(envelope.model_dump_json().encode()).hexdigest()


def signing_key(envelope: DsseEnvelope, ring: KeyRing, late: EnrolledKey | None = None) -> EnrolledKey:
    """The key that signed ``envelope``: pinned in ``ring``, or ``late`` (enrolled after the pin)."""
    keyid = envelope.signatures[0].keyid
    key = ring.key(keyid)
    if key is None and late is not None and late.key_id == keyid:
        key = late
    if key is None:
        raise ActionRefused(UNKNOWN_KEY, f"key {keyid[:16]} is not enrolled for this pause")
    if (problem := why_not_counted(key, ring.pinned_at)) is not None:
        raise ActionRefused(UNKNOWN_KEY, problem)
    return key


def verify(envelope: DsseEnvelope, ring: KeyRing, expected: Expected, *, late: EnrolledKey | None = None,
           commander: str | None = None) -> Verified:
    """``envelope`` as a statement of ``expected``, signed by a key enrolled to its approver that counts."""
    try:
        body = dsse.payload(envelope)
        statement = parse(body)
        signature = dsse.b64decode(envelope.signatures[0].sig, "the signature", limit=8 * 1024)
    except (dsse.EnvelopeError, StatementError) as exc:
        raise ActionRefused(BAD_STATEMENT, str(exc)) from None
    key = signing_key(envelope, ring, late)
    if key.holder != statement.predicate.approver.id:
        raise ActionRefused(UNKNOWN_KEY, f"signed with a key enrolled to {key.holder[:80]}, not to the approver "
                            f"{statement.predicate.approver.id[:80]}")
    if commander is not None and key.holder == commander:
        raise ActionRefused("separation_of_duties", f"{key.holder} paused this program as commander and may not "
                            "approve, whatever key signs")
    if found := differences(statement, expected):
        raise ActionRefused(BAD_STATEMENT, "; ".join(found))
    check_signature(body, signature, key, ring)
    return Verified(statement, key, envelope_digest(envelope))


def check_signature(body: bytes, signature: bytes, key: EnrolledKey, ring: KeyRing) -> None:
    """Raise unless ``key`` made ``signature`` over the statement ``body``."""
    try:
        if key.kind == "ssh":
            blob = dsse.b64decode(key.public_key, "the enrolled key", limit=4096)
            sshsig.verify(signature, dsse.pae(dsse.IN_TOTO_PAYLOAD, body), blob)
        else:
            if key.credential_id is None or ring.rp_id is None:
                raise passkey.PasskeyError("no credential id or RP ID is pinned for this passkey")
            passkey.verify(signature, dsse.challenge(dsse.IN_TOTO_PAYLOAD, body), credential_id=key.credential_id,
                           public_key=key.public_key, rp_id=ring.rp_id, origins=ring.origins)
    except (sshsig.SshSigError, passkey.PasskeyError, dsse.EnvelopeError) as exc:
        raise ActionRefused(BAD_SIGNATURE, f"the signature by key {key.key_id[:12]}… of {key.holder[:80]} does "
                            f"not verify: {exc}") from None


def statement_time(verified: Verified) -> datetime:
    return verified.statement.predicate.at
