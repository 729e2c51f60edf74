"""Approving (or rejecting) with a passkey: the statement the browser asks the passkey to sign, and the
envelope the signed assertion makes. A rejection is the same statement deciding ``reject``, its reason
the comment.

The page shows what is signed (plan digest, what changes, destructive actions) before anything is
asked; on "Approve with your passkey" the page asks here for the statement of exactly that approval
(the pause's current plan and review, its round's nonce, the role and comment typed), has the
authenticator sign the SHA-256 of its DSSE pre-authentication encoding (user verification required),
and posts the assertion with the approval. The workflow verifies it; nothing here decides.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pausegate.approvals import dsse, passkey
from pausegate.approvals.statement import Decision
from pausegate.console import bridge
from pausegate.console.bridge import Refusal, refusal_of
from pausegate.console.forms import Form
from pausegate.console.pages import posted
from pausegate.console.routes.pause import ProgramPath
from pausegate.errors import ActionRefused
from pausegate.models.signatures import DsseEnvelope, DsseSignature, EnrolledKey
from pausegate.models.state import PauseState
from pausegate.policy import signoff

router = APIRouter(prefix="/console/pauses", include_in_schema=False)

MAX_ASSERTION_FIELD = 8 * 1024


def rejection_roles(seen: bridge.Seen) -> list[str]:
    """The roles the signed-in person may sign a rejection as (the approver and proposer roles they hold)."""
    policy = seen.runbook.resume_policy
    held = seen.actor.for_program(seen.runbook.program.id)
    return [r for r in dict.fromkeys([*policy.approver_roles, *policy.proposer_roles]) if held.has_any([r])]


def passkeys_of(view: PauseState, actor_id: str) -> list[EnrolledKey]:
    """The passkeys of ``actor_id`` the pause pinned (only those can sign for it)."""
    ring = view.signoff.ring if view.signoff is not None else None
    return [k for k in (ring.keys if ring is not None else []) if k.holder == actor_id and k.kind == "passkey"]


@router.post("/{program}/plan/statement")
async def statement(request: Request, program: ProgramPath) -> Response:
    visitor, form = await posted(request)
    try:
        seen = await bridge.read(visitor.api, program, visitor.actor)
        view = seen.view
        keys = passkeys_of(view, seen.actor.id)
        if not keys:
            raise Refusal(409, "no_passkey", "you have no passkey this pause pinned; enroll one before the next pause")
        if form.get("decision") == "reject":
            decision: Decision = "reject"
            role = form.get("role") or next(iter(rejection_roles(seen)), "")
            comment = form.text("reason", required="A reason")
        else:
            decision = "approve"
            role = form.get("role") or next(iter(bridge.approval_choice(seen).roles), "")
            comment = form.text("comment", required="A comment")
        body = signoff.statement_to_sign(view, approver_id=seen.actor.id, role=role, comment=comment,
                                         at=datetime.now(UTC), decision=decision).body()
    except ActionRefused as exc:
        return JSONResponse({"code": exc.code, "detail": exc.reason}, status_code=409)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return JSONResponse({"code": refusal.code, "detail": refusal.reason}, status_code=refusal.status)
    ring = view.signoff.ring if view.signoff is not None else None
    document: dict[str, Any] = {
        "payload": base64.b64encode(body).decode(),
        "challenge": passkey.b64url(dsse.challenge(dsse.IN_TOTO_PAYLOAD, body)),
        "rpId": ring.rp_id if ring is not None else None,
        "allow": [k.credential_id for k in keys],
        "role": role,
    }
    return JSONResponse(document)


def envelope_from(form: Form, view: PauseState, actor_id: str) -> DsseEnvelope | None:
    """The envelope of a passkey approval posted with the form (None: the form carries none)."""
    payload, raw = form.get("payload"), form.get("assertion")
    if not payload and not raw:
        return None
    if len(raw) > MAX_ASSERTION_FIELD or len(payload) > MAX_ASSERTION_FIELD * 4:
        raise Refusal(413, "too_large", "the signed approval is larger than one")
    try:
        parts: Any = json.loads(raw)
        credential_id = parts["credentialId"]
        signature = passkey.assertion_bytes(credential_id, parts["authenticatorData"], parts["clientDataJSON"],
                                            parts["signature"])
    except (ValueError, KeyError, TypeError):
        raise Refusal(422, "invalid_assertion", "the passkey's answer is not an assertion") from None
    key = next((k for k in passkeys_of(view, actor_id) if k.credential_id == credential_id), None)
    if key is None:
        raise Refusal(409, "unknown_key", "the passkey that answered is not one this pause pinned for you")
    return DsseEnvelope(payloadType=dsse.IN_TOTO_PAYLOAD, payload=payload,
                        signatures=[DsseSignature(keyid=key.key_id, sig=base64.b64encode(signature).decode())])
