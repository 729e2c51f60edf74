"""What every console response and every state-changing console request must satisfy.

- Responses carry a strict Content-Security-Policy: scripts, styles, images and connections from this
  origin only, no inline script or style, no framing, forms posting only here. Text from people,
  runbooks and evidence is escaped by the templates; the policy is the second wall behind that.
- A state-changing request must come from a page of this origin (``Origin``, or ``Referer`` when a
  browser sends no Origin, must be this origin; a browser's ``Sec-Fetch-Site`` must not say
  cross-site) and carry the session's CSRF token (hidden field or ``X-CSRF-Token`` header). The
  session cookie is ``SameSite=Strict`` as well, so a cross-site post arrives without a session;
  each wall is checked on its own.
- The console's own origin, and the OIDC callback built from it, come from the request's Host only
  when that is a name the configuration allows (``api.allowed_hosts``).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def is_console_path(path: str) -> bool:
    """Paths the console serves: ``/`` (a redirect), ``/console`` and below, ``/static/`` (its assets)."""
    return path in ("/", "/console") or path.startswith(("/console/", "/static/"))


class ConsoleHeaders:
    """Adds ``SECURITY_HEADERS`` to every console response, and ``Cache-Control: no-store`` to pages
    (they show who had access to what; a shared machine's cache must not keep them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def host_name(host: str) -> str:
    """The name part of a Host header (``[::1]:8700`` -> ``[::1]``, ``example.com:443`` -> ``example.com``)."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def own_origin(request: Request, allowed: Collection[str]) -> str | None:
    """This console's origin as the browser sees it (scheme and the Host it asked for), or None when
    that Host is not one of the ``allowed`` names (``HOST`` for any port, or ``HOST:PORT``). Anyone
    can send any Host: a console that took it unchecked would build its origin, and the identity
    provider's callback, from a name the sender chose."""
    host = (request.headers.get("host") or request.url.netloc).lower()
    if host not in allowed and host_name(host) not in allowed:
        return None
    return f"{request.url.scheme}://{host}"


def unserved_host_reason(request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return f"this console is not served as {host[:100]!r} (api.allowed_hosts)"


def cross_site_reason(request: Request, allowed: Collection[str]) -> str | None:
    """Why ``request`` cannot be trusted to come from a console page, or None when it can."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"the request came from another site (Sec-Fetch-Site: {fetch_site[:40]})"
    expected = own_origin(request, allowed)
    if expected is None:
        return unserved_host_reason(request)
    origin = request.headers.get("origin")
    if origin is not None:
        if origin.lower() != expected:
            return f"the request came from {origin[:100]!r}, not from this console"
        return None
    referer = request.headers.get("referer")
    if referer is None:
        return "the request names no Origin or Referer; the console accepts changes only from its own pages"
    parts = urlsplit(referer)
    if f"{parts.scheme}://{parts.netloc}".lower() != expected:
        return "the request came from another site (Referer)"
    return None
