"""The web console: where reviewers work and leaders decide, served by the API process.

Server-rendered pages (Jinja2, autoescaped) under ``/console/``, enhanced by vendored htmx (partial
updates, server-sent events for live progress) and usable without it. A face of the same rules as
the API and the CLI (``bridge``): it reads the workflow's status and the evidence store through the
API's code and acts through the API's actions, so it adds no rule of its own.

People sign in with a token, exchanged once for a session cookie (``sessions``); every
state-changing request must come from a console page of this origin and carry the session's CSRF
token, and every response carries a strict Content-Security-Policy (``security``).

The API does not know the console: the module that mounts the faces (``pausegate.app``) builds the
API's app with the console's sessions (``pages.ConsoleSessions``, the API's ``BrowserSessions``) and
then includes the console into it (``include_console``).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from pausegate.console import pages
from pausegate.console.pages import ConsoleSessions
from pausegate.console.render import STATIC
from pausegate.console.routes import console_router
from pausegate.console.security import ConsoleHeaders
from pausegate.console.state import ConsoleState

__all__ = ["ConsoleSessions", "ConsoleState", "include_console"]


def include_console(app: FastAPI, state: ConsoleState) -> None:
    """Serve the console from ``app`` (an app built by ``pausegate.api.app.create_app`` with
    ``ConsoleSessions(state)``, whose ``app.state.api`` it uses): its routes, its static files under
    ``/static/``, its security headers, and the pages its own errors answer with. ``state`` (sessions,
    templates, stream timing) is also put at ``app.state.console``."""
    app.state.console = state
    pages.install(app)
    app.include_router(console_router)
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="console-static")
    app.add_middleware(ConsoleHeaders)
