"""Signing keys: a holder enrolls their SSH key or passkey, an admin other than the holder confirms it,
the holder or an admin removes it; every change is a line of the enrollment log (``pausegate.auth.keys``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import Field
from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AuthenticatorSelectionCriteria, ResidentKeyRequirement, UserVerificationRequirement

from pausegate.api.deps import ActorDep, StateDep
from pausegate.api.state import ApiState
from pausegate.approvals import possession
from pausegate.approvals.enrollment import KeyChange
from pausegate.approvals.passkey import b64url
from pausegate.auth.key_notices import NOTICES_LOG, KeyNotices, chat_notifier, notices_path
from pausegate.auth.keys import LOG_NAME, KeyEnrollment, keys_log_path, ssh_key
from pausegate.errors import ApiError
from pausegate.models.base import Model
from pausegate.models.people import Actor
from pausegate.models.signatures import DsseEnvelope, EnrolledKey, KeyRing
from pausegate.records.files import FileMedium
from pausegate.records.log import ChainMedium
from pausegate.records.postgres import PgMedium

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/keys", tags=["keys"])

KeyIdPath = PathParam(pattern=r"^[0-9a-f]{64}$", description="The key's id (SHA-256 of its public key).")
REGISTRATION_SECONDS = 300
_registrations: dict[str, tuple[bytes, float]] = {}
"""Passkey registrations under way: actor id -> (challenge, deadline). One API process (files state)."""


def enrollment(state: ApiState) -> KeyEnrollment:
    """The enrollment log where this deployment keeps its users (beside the users file, or in the API's
    database that replicas share), signed with the deployment's key."""
    db = state.backends.database
    medium: ChainMedium = PgMedium(lambda: db.sync_pool.connection(), LOG_NAME) if db is not None \
        else FileMedium(keys_log_path(state.settings.api.users_file))
    return KeyEnrollment(medium, state.signing_key, lambda: datetime.now(UTC))


def pinned_ring(state: ApiState) -> KeyRing:
    """The key ring a pause starting now pins."""
    api = state.settings.api
    return enrollment(state).ring(datetime.now(UTC), rp_id=api.passkey_rp_id, origins=api.passkey_origins_or_default())


def ring_or_none(state: ApiState) -> KeyRing | None:
    """The ring to pin, or None when the enrollment log cannot be read: nothing stored may stand between a
    commander and the kill switch, and a pause without a ring counts no signed approval (it fails closed)."""
    try:
        return pinned_ring(state)
    except Exception as exc:
        log.error("key_ring_unavailable", error=str(exc)[:300])
        return None


def signing_key_of(state: ApiState, envelope: DsseEnvelope | None) -> EnrolledKey | None:
    """The enrolled key an envelope names, as the enrollment log has it now (None: none, or unreadable)."""
    if envelope is None:
        return None
    try:
        return enrollment(state).keys().get(envelope.signatures[0].keyid)
    except Exception as exc:  # the pinned ring still verifies; a later key then simply does not count
        log.error("enrollment_log_unreadable", error=str(exc)[:300])
        return None


class SshKeyRequest(Model):
    public_key: str = Field(min_length=20, max_length=4096, description="An OpenSSH public key line.")
    challenge: str | None = Field(default=None, max_length=possession.MAX_CHALLENGE,
                                  description="The challenge POST /v1/keys/ssh/challenge issued you for this key.")
    signature: str | None = Field(default=None, max_length=8192, description="The challenge signed with this key: "
                                  "ssh-keygen -Y sign -n pausegate-key-enrollment (armored, or its base64 blob).")


class SshChallenge(Model):
    challenge: str
    namespace: str = possession.ENROLL_NAMESPACE
    expires_at: datetime


class PasskeyRegistration(Model):
    credential: dict[str, Any] = Field(description="The browser's PublicKeyCredential (navigator.credentials.create).")


class KeyList(Model):
    keys: list[EnrolledKey]
    problems: list[str] = Field(default_factory=list, description="What is wrong with the enrollment log, and "
                                "each notice of a change its holder could not be sent.")


async def _change(state: ApiState, call: Any) -> Any:
    try:
        return await asyncio.to_thread(call)
    except ValueError as exc:
        raise ApiError(422, "invalid_key", str(exc)[:500]) from None


def notices(state: ApiState) -> KeyNotices:
    """Where the holder of a changed key is told of it, and undelivered notices are recorded (beside the
    users file, or in the API's database)."""
    db = state.backends.database
    medium: ChainMedium = PgMedium(lambda: db.sync_pool.connection(), NOTICES_LOG) if db is not None \
        else FileMedium(notices_path(state.settings.api.users_file))
    notifier, why_none = chat_notifier(state.settings)
    return KeyNotices(notifier, medium, state.signing_key, lambda: datetime.now(UTC), why_none=why_none)


def _notify_holder(state: ApiState, change: KeyChange) -> None:
    # The holder learns of every change to their keys; one they did not make is how a forged one is
    # noticed. Sent after the line is in the log, in the background: chat never holds up the change.
    log.info("key_changed", action=change.action, key_id=change.key_id, holder=change.holder, by=change.by)
    notices(state).tell(change)


@router.get("", response_model=KeyList)
async def list_keys(state: StateDep, actor: ActorDep) -> KeyList:
    """Every enrolled key (public keys only) and the enrollment log's problems."""
    keys, told = enrollment(state), notices(state)
    listed, problems = await asyncio.to_thread(
        lambda: (list(keys.keys().values()), keys.problems() + told.problems()))
    return KeyList(keys=listed, problems=problems)


@router.post("/ssh/challenge", response_model=SshChallenge)
async def ssh_challenge(body: SshKeyRequest, state: StateDep, actor: ActorDep) -> SshChallenge:
    """A challenge for you to sign with the SSH key you are enrolling (valid for a few minutes)."""
    key_id, _ = await _change(state, lambda: ssh_key(body.public_key))
    challenge, expires = possession.issue(state.signing_key, actor.id, key_id, datetime.now(UTC))
    return SshChallenge(challenge=challenge, expires_at=expires)


@router.post("/ssh", response_model=EnrolledKey, status_code=201)
async def enroll_ssh_key(body: SshKeyRequest, state: StateDep, actor: ActorDep) -> EnrolledKey:
    """Enroll your own SSH key (it signs approvals with ``ssh-keygen -Y sign -n pausegate-approval``),
    proving you hold it by signing the challenge ``/keys/ssh/challenge`` issued you; it counts once an
    admin other than you confirms it."""
    key_id, blob = await _change(state, lambda: ssh_key(body.public_key))
    if body.challenge is None or body.signature is None:
        raise ApiError(422, "proof_of_possession", "enrolling an SSH key takes proof that you hold it: sign the "
                       "challenge from POST /v1/keys/ssh/challenge with ssh-keygen -Y sign -n "
                       f"{possession.ENROLL_NAMESPACE} and send it with the key")
    try:
        possession.check(state.signing_key.public_key(), body.challenge, body.signature, actor_id=actor.id,
                         key_blob=base64.b64decode(blob), now=datetime.now(UTC))
    except possession.PossessionError as exc:
        raise ApiError(422, "proof_of_possession", f"the SSH key is not enrolled: {exc}") from None
    keys = enrollment(state)
    change = await _change(state, lambda: keys.enroll(actor, "ssh", key_id, blob))
    _notify_holder(state, change)
    return keys.keys()[key_id]


def registration_options(state: ApiState, actor: Actor) -> dict[str, Any]:
    """Registration options for a new passkey of ``actor`` (user verification required); the challenge is
    remembered for ``REGISTRATION_SECONDS``."""
    api = state.settings.api
    challenge = os.urandom(32)
    _registrations[actor.id] = (challenge, time.monotonic() + REGISTRATION_SECONDS)
    options = generate_registration_options(
        rp_id=api.passkey_rp_id, rp_name="pausegate", user_name=actor.id[:64],
        user_id=hashlib.sha256(actor.id.encode()).digest()[:16], challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED),
    )
    document: dict[str, Any] = json.loads(options_to_json(options))
    return document


async def register_passkey(state: ApiState, actor: Actor, credential: dict[str, Any]) -> EnrolledKey:
    """Enroll the passkey the browser created for ``actor``, answering ``registration_options``."""
    pending = _registrations.pop(actor.id, None)
    if pending is None or pending[1] < time.monotonic():
        raise ApiError(409, "no_registration", "no passkey registration under way for you; ask for options first")
    api = state.settings.api
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=pending[0], expected_rp_id=api.passkey_rp_id,
            expected_origin=api.passkey_origins_or_default(), require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise ApiError(422, "invalid_passkey", f"the registration does not verify: {str(exc)[:300]}") from None
    cose = verified.credential_public_key
    key_id = hashlib.sha256(cose).hexdigest()
    keys = enrollment(state)
    change = await _change(state, lambda: keys.enroll(actor, "passkey", key_id, b64url(cose),
                                                      b64url(verified.credential_id)))
    _notify_holder(state, change)
    return keys.keys()[key_id]


async def confirm(state: ApiState, actor: Actor, key_id: str) -> EnrolledKey:
    """An admin other than the key's holder confirms it."""
    keys = enrollment(state)
    change = await _change(state, lambda: keys.confirm(actor, key_id))
    _notify_holder(state, change)
    return keys.keys()[key_id]


@router.post("/passkeys/options")
async def passkey_options(state: StateDep, actor: ActorDep) -> dict[str, Any]:
    """Registration options for a new passkey of yours (user verification required)."""
    return registration_options(state, actor)


@router.post("/passkeys", response_model=EnrolledKey, status_code=201)
async def enroll_passkey(body: PasskeyRegistration, state: StateDep, actor: ActorDep) -> EnrolledKey:
    """Enroll the passkey the browser just created for you (answering ``/keys/passkeys/options``)."""
    return await register_passkey(state, actor, body.credential)


@router.post("/{key_id}/confirm", response_model=EnrolledKey)
async def confirm_key(state: StateDep, actor: ActorDep, key_id: str = KeyIdPath) -> EnrolledKey:
    """An admin other than the key's holder confirms it."""
    return await confirm(state, actor, key_id)


@router.delete("/{key_id}", status_code=204)
async def remove_key(state: StateDep, actor: ActorDep, key_id: str = KeyIdPath) -> None:
    """The holder, or an admin, removes a key."""
    keys = enrollment(state)
    change = await _change(state, lambda: keys.remove(actor, key_id))
    _notify_holder(state, change)
