"""Keys: your passkeys and SSH keys, adding a passkey (WebAuthn registration, user verification required),
and, for an admin, confirming keys others enrolled. Every change goes through the API's enrollment code
(``pausegate.api.routes.keys``) into the signed enrollment log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pausegate.api.routes import keys as api_keys
from pausegate.console.bridge import Refusal, refusal_of
from pausegate.console.pages import VisitorDep, done, posted, render
from pausegate.policy.authority import ADMIN_ROLE

router = APIRouter(prefix="/console/keys", include_in_schema=False)

KEYS_URL = "/console/keys"
MAX_CREDENTIAL = 16 * 1024


@router.get("")
async def keys_page(request: Request, visitor: VisitorDep) -> Response:
    enrollment = api_keys.enrollment(visitor.api)
    keys = await asyncio.to_thread(lambda: list(enrollment.keys().values()))
    me = visitor.actor.id
    admin = ADMIN_ROLE in visitor.actor.roles
    return render(request, visitor, "keys.html", mine=[k for k in keys if k.holder == me],
                  to_confirm=[k for k in keys if admin and k.holder != me and me not in k.confirmed_by],
                  admin=admin, rp_id=visitor.api.settings.api.passkey_rp_id)


def _refused_json(exc: Exception) -> JSONResponse:
    refusal = refusal_of(exc)
    if refusal is None:
        raise exc
    return JSONResponse({"code": refusal.code, "detail": refusal.reason}, status_code=refusal.status)


@router.post("/passkeys/options")
async def passkey_options(request: Request) -> Response:
    visitor, _ = await posted(request)
    return JSONResponse(api_keys.registration_options(visitor.api, visitor.actor))


@router.post("/passkeys")
async def register_passkey(request: Request) -> Response:
    visitor, form = await posted(request)
    raw = form.get("credential")
    try:
        if len(raw) > MAX_CREDENTIAL:
            raise Refusal(413, "too_large", "the credential is larger than a passkey's")
        credential: Any = json.loads(raw)
        if not isinstance(credential, dict):
            raise Refusal(422, "invalid_passkey", "the credential is not an object")
        key = await api_keys.register_passkey(visitor.api, visitor.actor, credential)
    except ValueError:
        return _refused_json(Refusal(422, "invalid_passkey", "the credential is not JSON"))
    except Exception as exc:
        return _refused_json(exc)
    visitor.flash(f"Passkey {key.key_id[:12]} enrolled; it signs approvals once an admin other than you confirms it.")
    return JSONResponse({"key_id": key.key_id, "next": KEYS_URL})


@router.post("/{key_id}/confirm")
async def confirm_key(request: Request, key_id: str) -> Response:
    visitor, _ = await posted(request)
    if len(key_id) != 64 or any(c not in "0123456789abcdef" for c in key_id):
        raise Refusal(404, "unknown_key", "no such key")
    try:
        key = await api_keys.confirm(visitor.api, visitor.actor, key_id)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        raise refusal from None
    return done(visitor, KEYS_URL, f"Key {key.key_id[:12]} of {key.holder} confirmed.")
