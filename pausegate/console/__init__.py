"""The web console: where reviewers work and leaders decide, served by the API process.

Server-rendered pages (Jinja2, autoescaped) under ``/console/``, enhanced by vendored htmx (partial
updates, server-sent events for live progress) and usable without it. A face of the same rules as
the API and the CLI (``bridge``): it reads the workflow's status and the evidence store through the
API's code and acts through the API's actions, so it adds no rule of its own.

People sign in with a token, exchanged once for a session cookie (``sessions``); every
state-changing request must come from a console page of this origin and carry the session's CSRF
token, and every response carries a strict Content-Security-Policy (``security``).

This package's ``__init__`` imports nothing heavy: the API's gate imports ``security`` from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from pausegate.console.state import ConsoleState

__all__ = ["include_console"]


def include_console(app: FastAPI, state: ConsoleState | None = None) -> ConsoleState:
    """Serve the console from ``app`` (an app built by ``pausegate.api.create_app``, whose
    ``app.state.api`` it uses): its routes, its static files under ``/static/``, its security
    headers, and the pages its own errors answer with. Returns the console's state (sessions,
    templates, stream timing), also at ``app.state.console``."""
    from starlette.staticfiles import StaticFiles

    from pausegate.console import pages
    from pausegate.console.render import STATIC
    from pausegate.console.routes import console_router
    from pausegate.console.security import ConsoleHeaders
    from pausegate.console.state import ConsoleState

    state = state or ConsoleState()
    app.state.console = state
    pages.install(app)
    app.include_router(console_router)
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="console-static")
    app.add_middleware(ConsoleHeaders)
    return state
