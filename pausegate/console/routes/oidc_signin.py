"""Signing in through the organisation's identity provider (OIDC authorization code with PKCE).

``GET /console/sign-in/oidc`` opens a pending sign-in and sends the browser to the provider;
``GET /console/sign-in/oidc/callback`` takes it back, exchanges the code and opens a console session
exactly as the token form does, with the ID token as the session's credential: every request
re-verifies it through the app's authenticator, so the session ends when the ID token expires (or
its key, issuer or groups stop verifying). See ``pausegate.console.oidc`` for the why of each step.
"""

from __future__ import annotations

from typing import Annotated

import httpx
import structlog
from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from pausegate.auth.base import AuthenticationError
from pausegate.auth.oidc import OidcVerifier
from pausegate.config import OidcSettings
from pausegate.console import oidc
from pausegate.console.pages import api_of, console_of, cookie_name, local_next, render, tls
from pausegate.console.routes.signin import sign_in_form
from pausegate.console.security import own_origin, unserved_host_reason
from pausegate.console.sessions import SIGN_IN_COOKIE

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

START_AGAIN = "Start the sign-in again."


def _configured(request: Request) -> tuple[OidcSettings, OidcVerifier] | None:
    settings = api_of(request).settings.api.oidc
    verifier = getattr(api_of(request).authenticator, "oidc", None)
    if settings is None or not oidc.offered(settings) or not isinstance(verifier, OidcVerifier):
        return None
    return settings, verifier


def _redirect_uri(request: Request, settings: OidcSettings) -> str | None:
    """Where the provider sends the browser back; None when it would be built from a Host this
    console is not served as."""
    if settings.redirect_uri:
        return settings.redirect_uri
    origin = own_origin(request, api_of(request).settings.api.served_hosts())
    return None if origin is None else origin + oidc.CALLBACK_PATH


def _client(request: Request) -> str:
    """Whom a pending sign-in is counted against: the address the request came from."""
    return request.client.host if request.client is not None else ""


def _refused(request: Request, next_path: str, status: int, error: str) -> Response:
    response = sign_in_form(request, next_path, status=status, error=error)
    _forget_pending(request, response)
    return response


def _forget_pending(request: Request, response: Response) -> None:
    response.delete_cookie(oidc.pending_cookie(tls(request)), path=oidc.PENDING_PATH, secure=tls(request),
                           httponly=True, samesite="lax")


@router.get(oidc.PENDING_PATH)
async def start(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    next_path = local_next(next)
    configured = _configured(request)
    if configured is None:
        return sign_in_form(request, next_path, status=404, error="Sign-in through an identity provider is not "
                            "configured here ([api.oidc] has no client_id and endpoints). Use a token.")
    settings, _ = configured
    redirect_uri = _redirect_uri(request, settings)
    if redirect_uri is None:
        log.warning("console_oidc_refused", reason="host")
        return sign_in_form(request, next_path, status=400, error=f"Sign-in refused: {unserved_host_reason(request)}.")
    pending_id, pending = console_of(request).pending_sign_ins.open(next_path, _client(request))
    response = RedirectResponse(oidc.authorization_url(settings, redirect_uri, pending), status_code=303)
    # Lax, not Strict: the provider sends the browser back with a cross-site top-level GET (module docstring
    # of pausegate.console.oidc); the path keeps it off every other console request.
    response.set_cookie(oidc.pending_cookie(tls(request)), pending_id, max_age=oidc.PENDING_SECONDS,
                        path=oidc.PENDING_PATH, httponly=True, secure=tls(request), samesite="lax")
    return response


@router.get(oidc.CALLBACK_PATH)
async def callback(
    request: Request,
    state: Annotated[str | None, Query(max_length=500)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=100)] = None,
    error_description: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    console = console_of(request)
    configured = _configured(request)
    # Taken out whatever happens next: a pending sign-in answers once, so a replayed or forged answer finds nothing.
    pending = console.pending_sign_ins.take(request.cookies.get(oidc.pending_cookie(tls(request))))
    if configured is None:
        return _refused(request, local_next(None), 404, "Sign-in through an identity provider is not configured here.")
    settings, verifier = configured
    if pending is None:
        log.info("console_oidc_refused", reason="no_pending")
        return _refused(request, local_next(None), 400, "This sign-in answer is for an attempt this browser did not "
                        f"start, or one already used or expired. {START_AGAIN}")
    next_path = pending.next_path
    if not pending.state_matches(state):
        log.warning("console_oidc_refused", reason="state")
        return _refused(request, next_path, 400, "The identity provider's answer does not match the sign-in this "
                        f"browser started (state). {START_AGAIN}")
    if error is not None or not code:
        log.info("console_oidc_refused", reason="provider", error=error)
        detail = f"{error}: {error_description}" if error_description else (error or "no code")
        return _refused(request, next_path, 401, f"The identity provider did not sign you in ({detail}).")
    redirect_uri = _redirect_uri(request, settings)
    if redirect_uri is None:
        log.warning("console_oidc_refused", reason="host")
        return _refused(request, next_path, 400, f"Sign-in refused: {unserved_host_reason(request)}.")
    try:
        token = await oidc.exchange(settings, redirect_uri, pending, code)
    except OAuthError as exc:
        log.info("console_oidc_refused", reason="exchange", error=exc.error)
        return _refused(request, next_path, 401, f"The identity provider refused the sign-in code ({exc.error}). "
                        f"{START_AGAIN}")
    except httpx.HTTPError as exc:
        log.warning("console_oidc_unreachable", error=str(exc) or type(exc).__name__)
        return _refused(request, next_path, 502, "The identity provider could not be reached to finish the sign-in. "
                        f"{START_AGAIN}")
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        return _refused(request, next_path, 401, "The identity provider sent no ID token.")
    try:
        # The API's own verifier: the same issuer, audience, keys and groups mapping as a bearer token.
        actor, claims = await verifier.verify(id_token)
    except AuthenticationError as exc:
        log.info("console_oidc_refused", reason=exc.reason)
        return _refused(request, next_path, 401, f"The identity provider's token does not sign anyone in here "
                        f"({exc.reason}).")
    if not pending.nonce_matches(claims.get("nonce")):
        log.warning("console_oidc_refused", reason="nonce", actor=actor.id)
        return _refused(request, next_path, 401, f"The ID token was not issued for this sign-in (nonce). {START_AGAIN}")
    session_id, _ = console.sessions.open(actor.id, id_token)
    log.info("console_signed_in", actor=actor.id, via="oidc")
    response = render(request, None, "signed_in.html", next_path=next_path, actor_id=actor.id)
    response.set_cookie(cookie_name(request), session_id, max_age=int(console.sessions.policy.lifetime_seconds),
                        path="/", httponly=True, secure=tls(request), samesite="strict")
    _forget_pending(request, response)
    response.delete_cookie(SIGN_IN_COOKIE, path="/console/sign-in", secure=tls(request), httponly=True,
                           samesite="strict")
    return response
