"""The codec endpoint: Temporal's remote codec protocol, so a Temporal Web UI (or ``temporal
--codec-endpoint``) shows encrypted history decrypted to the people allowed to read it.

``POST /codec/decode`` and ``POST /codec/encode`` take and answer ``{"payloads": [...]}``, each payload
``{"metadata": {name: base64}, "data": base64}`` (protobuf's JSON form), for the namespace the
``X-Namespace`` header names. The caller is authenticated like every API caller (the gate: a local
token or an OIDC bearer, as a UI passing its user's access token sends) or by their console session
cookie (a UI sending cross-origin credentials, same site as the API: ``pausegate.api.browsers``); who
may decode or encode is ``pausegate.policy.authority``'s decision, and a refusal goes to the API's
refusal log. Browsers reach it only from the configured Web UI origin (``pausegate.api.cors``). It is
not in the OpenAPI document: its contract is Temporal's (``docs/encryption.md``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload

from pausegate.api.actions import log_refusal
from pausegate.api.browsers import BrowserSessions
from pausegate.api.deps import StateDep
from pausegate.api.errors import ApiError
from pausegate.api.state import ApiState
from pausegate.auth.base import AuthenticationError
from pausegate.errors import ActionRefused, HistoryKeyError, RunbookError
from pausegate.models.people import Actor
from pausegate.models.runbook import Runbook
from pausegate.policy import authority
from pausegate.temporal.codec import EncryptionCodec, codec_of

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/codec", tags=["codec"], include_in_schema=False)

MAX_PAYLOADS = 1000  # a history page's worth; the gate bounds the body's bytes


class CodecPayload(BaseModel):
    """One payload in protobuf's JSON form: metadata values and data base64-encoded."""

    metadata: dict[str, str] = Field(default_factory=dict, max_length=32)
    data: str = ""


class CodecBody(BaseModel):
    payloads: list[CodecPayload] = Field(default_factory=list, max_length=MAX_PAYLOADS)


Namespace = Annotated[str | None, Header(alias="X-Namespace", max_length=1000)]


async def codec_caller(request: Request, state: StateDep) -> Actor:
    """The verified caller: the bearer token's actor (checked by the gate), else the person whose console
    session cookie a Web UI sent with cross-origin credentials (the dev server's UI has no sign-in of its
    own, so it cannot pass a token)."""
    actor = getattr(request.state, "actor", None)
    if isinstance(actor, Actor):
        return actor
    browsers: BrowserSessions | None = request.app.state.browsers
    token = browsers.token(request) if browsers is not None else None
    unauthenticated = ApiError(401, "unauthenticated", "send an Authorization: Bearer <token> header, or sign in "
                               "to the console and let the Web UI send cross-origin credentials",
                               headers={"WWW-Authenticate": "Bearer"})
    if browsers is None or token is None:
        raise unauthenticated
    try:
        return await state.authenticator.authenticate(token)
    except AuthenticationError:
        browsers.end(request)  # the token behind the session no longer proves anyone
        raise unauthenticated from None


CallerDep = Annotated[Actor, Depends(codec_caller)]


def _bytes(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_request", f"{where}: not base64") from None


def _to_proto(body: CodecBody) -> list[Payload]:
    return [
        Payload(metadata={k: _bytes(v, f"payloads.{i}.metadata.{k[:80]}") for k, v in p.metadata.items()},
                data=_bytes(p.data, f"payloads.{i}.data"))
        for i, p in enumerate(body.payloads)
    ]


def _to_body(payloads: list[Payload]) -> CodecBody:
    return CodecBody(payloads=[
        CodecPayload(metadata={k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                     data=base64.b64encode(p.data).decode())
        for p in payloads
    ])


def _runbooks(state: ApiState) -> list[Runbook]:
    runbooks: list[Runbook] = []
    for program in state.programs():
        try:
            runbooks.append(state.runbook(program))
        except (ApiError, RunbookError):  # a broken runbook grants nobody anything
            continue
    return runbooks


async def _authorised(state: ApiState, actor: Actor, action: str, namespace: str | None) -> EncryptionCodec:
    try:
        if action == "codec_encode":
            authority.require_history_writer(actor)
        else:
            authority.require_history_reader(actor, _runbooks(state))
    except ActionRefused as exc:
        await log_refusal(state, None, actor, action, exc)  # no pause concerns it: the refusal log
        log.info("action_refused", actor=actor.id, action=action, code=exc.code)
        raise
    configured = state.settings.temporal.namespace
    if namespace is not None and namespace != configured:
        raise ApiError(404, "unknown_namespace", f"this codec serves namespace {configured!r}, not {namespace[:200]!r}")
    codec = codec_of(state.client.data_converter)
    if codec is None:
        raise ApiError(404, "not_encrypted", "this deployment does not encrypt history (no [encryption] section)")
    return codec


@router.post("/decode", response_model=CodecBody)
async def decode(body: CodecBody, state: StateDep, actor: CallerDep, namespace: Namespace = None) -> CodecBody:
    """Payloads as they were before encryption; a payload that was never encrypted comes back as it is."""
    codec = await _authorised(state, actor, "codec_decode", namespace)
    payloads = _to_proto(body)
    try:
        opened = [codec.open(p, allow_plaintext=True) for p in payloads]
    except HistoryKeyError as exc:
        raise ApiError(422, "undecodable", str(exc)) from None
    log.info("history_decoded", actor=actor.id, payloads=len(opened))
    return _to_body(opened)


@router.post("/encode", response_model=CodecBody)
async def encode(body: CodecBody, state: StateDep, actor: CallerDep, namespace: Namespace = None) -> CodecBody:
    """Payloads sealed with the current key (admins only)."""
    codec = await _authorised(state, actor, "codec_encode", namespace)
    sealed = [codec.seal(p) for p in _to_proto(body)]
    log.info("history_encoded", actor=actor.id, payloads=len(sealed))
    return _to_body(sealed)
