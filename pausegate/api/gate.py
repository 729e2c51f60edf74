"""The ASGI layer in front of every route: body size first, then who is calling.

Both run before FastAPI reads or parses a body, so a huge or unauthenticated request is
answered 413 or 401 without touching Temporal, and without leaking validation details
to someone who has not proved who they are.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pausegate.api.browsers import BrowserSessions
from pausegate.auth.base import AuthenticationError, Authenticator
from pausegate.errors import ApiError

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""A request body larger than this is refused (a plan of thousands of grants is well below it;
Temporal warns at 256 KB payloads and refuses at 2 MB)."""

PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz",
                          "/metrics"})  # counts only, no program names (pausegate.observability.api_metrics)


async def _answer(send: Send, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": code, "detail": detail, "problems": []}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _codec_with_cookie(scope: Scope) -> bool:
    """A codec request without a bearer token but with a cookie: a Temporal Web UI calling with
    cross-origin credentials and the person's browser session. The codec route checks the session."""
    if not scope["path"].startswith("/codec/"):
        return False
    return any(name == b"cookie" for name, _ in scope.get("headers", []))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            scheme, _, credentials = text.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class Gate:
    """Refuses oversize bodies (413) and requests without a valid bearer token (401).

    ``browsers``: another face served by the same app whose own paths prove who calls with its
    session cookie (the web console); the gate leaves those paths to it.
    """

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, max_body_bytes: int = MAX_BODY_BYTES,
                 browsers: BrowserSessions | None = None) -> None:
        self.app = app
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.browsers = browsers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:12]
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _answer(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if declared > self.max_body_bytes:
                    await _answer(
                        send,
                        413,
                        "body_too_large",
                        f"request body of {declared} bytes exceeds {self.max_body_bytes}",
                    )
                    return

        # Another face's pages, assets and live streams (the console's: ``browsers``) prove who is calling
        # with its own session cookie, checked by that face, not with a bearer token; so may the codec
        # endpoint's callers.
        if scope["path"] not in PUBLIC_PATHS and not self._browsers_path(scope["path"]) and not (
            _bearer(scope) is None and _codec_with_cookie(scope)
        ):
            token = _bearer(scope)
            if token is None:
                await _answer(
                    send,
                    401,
                    "unauthenticated",
                    "send an Authorization: Bearer <token> header",
                    {"WWW-Authenticate": "Bearer"},
                )
                return
            try:
                actor = await self.authenticator.authenticate(token)
            except ApiError as exc:  # the users' store did not answer (several replicas): 503, not 401
                await _answer(send, exc.status, exc.code, exc.detail, exc.headers)
                return
            except AuthenticationError as exc:
                log.info("request_unauthenticated", path=scope["path"], reason=exc.reason)
                await _answer(
                    send,
                    401,
                    "invalid_token",
                    exc.reason,
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                return
            state: dict[str, Any] = scope.setdefault("state", {})
            state["actor"] = actor

        # Read the body here, up to the limit, and replay it: FastAPI turns any error raised while it
        # reads a body into a 400, so a chunked body that grows too large must be caught before it.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                await _answer(send, 413, "body_too_large", f"request body exceeds {self.max_body_bytes} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        actor = scope.get("state", {}).get("actor")
        with structlog.contextvars.bound_contextvars(actor=actor.id if actor else None):
            await self.app(scope, replay, send)

    def _browsers_path(self, path: str) -> bool:
        return self.browsers is not None and self.browsers.serves(path)
