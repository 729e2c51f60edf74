"""People signed in with a browser session by another face the same app serves (the web console).

The API knows that face only through this interface, handed to ``create_app`` by the module that
mounts the faces (``pausegate.app``): the gate leaves the face's own paths to it (its pages prove who
calls with its session cookie, not a bearer token), and the codec endpoint accepts that cookie from a
Temporal Web UI sending cross-origin credentials (``pausegate.api.routes.codec``).
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request


class BrowserSessions(Protocol):
    """Sessions a face keeps for signed-in browsers."""

    def serves(self, path: str) -> bool:
        """Whether ``path`` is the face's own (it proves who calls itself; the gate lets it through)."""
        ...

    def token(self, request: Request) -> str | None:
        """The token behind the live session whose cookie ``request`` carries (None: no live session)."""
        ...

    def end(self, request: Request) -> None:
        """End the session whose cookie ``request`` carries: its token no longer proves anyone."""
        ...
