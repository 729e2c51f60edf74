"""Signing in with a token (exchanged once for a session cookie) and signing out."""

from __future__ import annotations

import secrets
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pausegate.auth.base import AuthenticationError
from pausegate.console import oidc
from pausegate.console.forms import Form
from pausegate.console.pages import (
    HOME,
    SIGN_IN,
    SignInRequired,
    api_of,
    console_of,
    cookie_name,
    current_visitor,
    local_next,
    posted,
    render,
    same_origin,
    tls,
)
from pausegate.console.security import CSRF_FIELD
from pausegate.console.sessions import SIGN_IN_COOKIE

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

WHY = {
    "expired": "Your session has expired. Sign in again.",
    "token": "Your token no longer signs you in (it was replaced or its user removed). Sign in with a current one.",
    "signed-out": "You are signed out.",
}
SIGN_IN_COOKIE_SECONDS = 15 * 60


def sign_in_form(request: Request, next_path: str, *, status: int = 200, message: str | None = None,
                  error: str | None = None) -> HTMLResponse:
    form_token = secrets.token_urlsafe(32)
    response = render(request, None, "sign_in.html", status=status, next_path=next_path, message=message,
                      error=error, form_token=form_token, oidc=oidc.offered(api_of(request).settings.api.oidc))
    response.set_cookie(SIGN_IN_COOKIE, form_token, max_age=SIGN_IN_COOKIE_SECONDS, path=SIGN_IN, httponly=True,
                        secure=tls(request), samesite="strict")
    return response


@router.get("/")
@router.get("/console")
async def root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


@router.get(SIGN_IN)
async def sign_in_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=500)] = None,
    why: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    try:
        await current_visitor(request)
    except SignInRequired:
        return sign_in_form(request, local_next(next), message=WHY.get(why or ""))
    return RedirectResponse(local_next(next), status_code=303)


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    same_origin(request)
    form = Form.parse(await request.body(), request.headers.get("content-type", ""))
    next_path = local_next(form.get("next"))
    expected = request.cookies.get(SIGN_IN_COOKIE)
    offered = form.get(CSRF_FIELD)
    if not expected or not secrets.compare_digest(expected.encode(), offered.encode()):
        # No sign-in cookie from this browser (another site's form, or an old tab): show a fresh form.
        return sign_in_form(request, next_path, status=403,
                             error="This sign-in form has expired or did not come from this console. Try again.")
    token = form.get("token").strip()
    try:
        actor = await api_of(request).authenticator.authenticate(token)
    except AuthenticationError as exc:
        log.info("console_sign_in_refused", reason=exc.reason)
        return sign_in_form(request, next_path, status=401,
                             error=f"That token does not sign anyone in ({exc.reason}).")
    console = console_of(request)
    session_id, _ = console.sessions.open(actor.id, token)
    log.info("console_signed_in", actor=actor.id)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(cookie_name(request), session_id, max_age=int(console.sessions.policy.lifetime_seconds),
                        path="/", httponly=True, secure=tls(request), samesite="strict")
    response.delete_cookie(SIGN_IN_COOKIE, path=SIGN_IN, secure=tls(request), httponly=True, samesite="strict")
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    visitor, _ = await posted(request)
    visitor.console.sessions.close(visitor.session_id)
    log.info("console_signed_out", actor=visitor.actor.id)
    response = RedirectResponse(f"{SIGN_IN}?why=signed-out", status_code=303)
    response.delete_cookie(cookie_name(request), path="/", secure=tls(request), httponly=True, samesite="strict")
    return response
