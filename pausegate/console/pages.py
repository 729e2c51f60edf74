"""What every console route shares: who is signed in, how a page is answered, how a form is read.

A request is signed in when its session cookie names a live session whose token still authenticates
through the app's authenticator (the same one the API's gate uses). Otherwise a page is redirected to
sign-in, an htmx request is told to go there (``HX-Redirect``), and a live stream is told to stop
(204: an ``EventSource`` does not reconnect after it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pausegate.auth.base import AuthenticationError
from pausegate.console.bridge import ApiState, Refusal  # the API's state, through the console's one door
from pausegate.console.forms import Form
from pausegate.console.security import CSRF_FIELD, CSRF_HEADER, cross_site_reason, is_console_path
from pausegate.console.sessions import SECURE_SESSION_COOKIE, SESSION_COOKIE, Session
from pausegate.console.state import ConsoleState
from pausegate.models.people import Actor

log = structlog.get_logger(__name__)

HOME = "/console/"
SIGN_IN = "/console/sign-in"


def console_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def api_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def tls(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    return SECURE_SESSION_COOKIE if tls(request) else SESSION_COOKIE


@dataclass(frozen=True)
class ConsoleSessions:
    """The console's sessions as the API sees them (``pausegate.api.browsers.BrowserSessions``): its gate
    leaves the console's paths to the console, and its codec endpoint accepts the console's session cookie."""

    console: ConsoleState

    def serves(self, path: str) -> bool:
        return is_console_path(path)

    def token(self, request: Request) -> str | None:
        session = self.console.sessions.get(request.cookies.get(cookie_name(request)))
        return session.token if session is not None else None

    def end(self, request: Request) -> None:
        self.console.sessions.close(request.cookies.get(cookie_name(request)))


def local_next(target: str | None) -> str:
    """``target`` when it is a console path of this site, else the board (no open redirect)."""
    if not target or len(target) > 500:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or "//" in target or not target.startswith(HOME):
        return HOME
    if any(ord(c) < 0x20 for c in target):
        return HOME
    return target


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class SignInRequired(Exception):
    """No live session: ``why`` is shown on the sign-in page (expired, token, signed-out)."""

    def __init__(self, why: str | None) -> None:
        self.why = why
        super().__init__(why or "sign in")


async def sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = SIGN_IN + f"?next={quote(local_next(back) if request.method == 'GET' else HOME, safe='')}"
    if exc.why:
        target += f"&why={exc.why}"
    response: Response
    if "text/event-stream" in request.headers.get("accept", ""):
        response = Response(status_code=204)
    elif is_htmx(request):
        response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    if exc.why == "expired" or exc.why == "token":
        response.delete_cookie(cookie_name(request), path="/", secure=tls(request), httponly=True, samesite="strict")
    return response


@dataclass
class Visitor:
    """The signed-in person of one request."""

    session_id: str
    session: Session
    actor: Actor
    console: ConsoleState
    api: ApiState

    def flash(self, message: str) -> None:
        """A message for the next page this person sees (after a redirect)."""
        self.session.flash = [*self.session.flash[-4:], message]


async def authenticate(console: ConsoleState, api: ApiState, session_id: str, session: Session) -> Actor:
    """The actor the session's token proves now; a token that no longer does ends the session."""
    try:
        return await api.authenticator.authenticate(session.token)
    except AuthenticationError as exc:
        console.sessions.close(session_id)
        log.info("console_session_token_refused", actor=session.actor_id, reason=exc.reason)
        raise SignInRequired("token") from None


async def current_visitor(request: Request) -> Visitor:
    console = console_of(request)
    session_id = request.cookies.get(cookie_name(request))
    session = console.sessions.get(session_id)
    if session is None or session_id is None:
        raise SignInRequired("expired" if session_id else None)
    api = api_of(request)
    actor = await authenticate(console, api, session_id, session)
    return Visitor(session_id, session, actor, console, api)


VisitorDep = Annotated[Visitor, Depends(current_visitor)]


def same_origin(request: Request) -> None:
    """Refuse (403 ``cross_site``) a state-changing request that did not come from a page of this origin."""
    reason = cross_site_reason(request, api_of(request).settings.api.served_hosts())
    if reason is not None:
        log.warning("console_cross_site_refused", path=request.url.path, reason=reason)
        raise Refusal(403, "cross_site", reason)


async def posted(request: Request) -> tuple[Visitor, Form]:
    """The person and the form of a state-changing request: first proved to come from a page of this
    origin, then from a live session, then carrying that session's CSRF token. Raises ``Refusal``
    (403) or ``SignInRequired``; the app answers both (``install``)."""
    same_origin(request)
    visitor = await current_visitor(request)
    form = Form.parse(await request.body(), request.headers.get("content-type", ""))
    offered = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not visitor.session.csrf_matches(offered):
        log.warning("console_csrf_refused", path=request.url.path, actor=visitor.actor.id)
        raise Refusal(403, "csrf", "the form's anti-forgery token is missing or stale; reload the page and retry")
    return visitor, form


def render(
    request: Request, visitor: Visitor | None, template: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page, with what every page shows: the person, their CSRF token, a fresh idempotency key,
    and messages left for them."""
    console = console_of(request)
    flashes: list[str] = []
    if visitor is not None:
        flashes, visitor.session.flash = visitor.session.flash, []
    html = console.templates.render(
        template,
        visitor=visitor,
        csrf=visitor.session.csrf if visitor is not None else "",
        flashes=flashes,
        idempotency_key=secrets.token_hex(16),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def refusal_page(request: Request, visitor: Visitor | None, refusal: Refusal) -> HTMLResponse:
    return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)


def done(visitor: Visitor, target: str, message: str) -> RedirectResponse:
    """After an accepted action: the message for the next page, and a redirect to it (POST, then GET)."""
    visitor.flash(message)
    return RedirectResponse(target, status_code=303)


async def refused(request: Request, exc: Exception) -> Response:
    # A refusal before any page context exists (cross-site, CSRF, a form that is not a form).
    assert isinstance(exc, Refusal)
    return refusal_page(request, None, exc)


def install(app: FastAPI) -> None:
    """Answer the console's own exceptions with pages (the API's handlers answer theirs with JSON)."""
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(Refusal, refused)
