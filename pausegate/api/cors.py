"""CORS for the codec endpoint only, and only for the configured Temporal Web UI origin.

The Web UI runs in the browser on its own origin and calls ``/codec/decode`` there with the user's
bearer token or cookies, so the endpoint answers CORS: credentials allowed, the ``Authorization``,
``Content-Type`` and ``X-Namespace`` headers allowed, preflights answered here, before the gate (a
preflight carries no token). Every other path of the API answers no CORS at all, and a preflight from
any other origin is refused (400), so no other site's script can read what the endpoint returns.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

CODEC_PREFIX = "/codec/"
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Namespace"]


class CodecCors:
    """Starlette's CORS middleware around the codec paths; other paths pass by untouched."""

    def __init__(self, app: ASGIApp, *, origin: str | None) -> None:
        self.app = app
        self.cors = (
            CORSMiddleware(app, allow_origins=[origin], allow_methods=["POST"], allow_headers=ALLOWED_HEADERS,
                           allow_credentials=True, max_age=600)
            if origin else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and scope["type"] == "http" and scope["path"].startswith(CODEC_PREFIX):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)
