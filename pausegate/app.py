"""The one place the faces meet: the HTTP API with the web console mounted into it, served.

The API (``pausegate.api``) knows nothing of the console; the console reaches the API through its
one door (``pausegate.console.bridge``). This module builds the API's app, hands it the console's
sessions (so its gate leaves the console's pages to the console, and its codec endpoint accepts the
console's cookie), then includes the console. Everything that serves people (``pausegate api``, the
embedded stack, the tests and benchmarks) builds its app here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from temporalio.client import Client

from pausegate.api import app as api_app
from pausegate.config import Settings
from pausegate.console import ConsoleSessions, ConsoleState, include_console
from pausegate.serving import serve_app


def create_app(settings: Settings, client: Client, *, console: ConsoleState | None = None,
               **api_options: Any) -> FastAPI:
    """The API (``pausegate.api.app.create_app``, which ``api_options`` go to) with the web console under
    ``/console/``; the console's state (sessions, templates, stream timing) is at ``app.state.console``."""
    console = console or ConsoleState()
    app = api_app.create_app(settings, client, browsers=ConsoleSessions(console), **api_options)
    include_console(app, console)
    return app


@asynccontextmanager
async def serve(
    settings: Settings,
    client: Client,
    *,
    host: str | None = None,
    port: int | None = None,
    startup_timeout: float = 30.0,
    app: Any = None,
    **app_options: Any,
) -> AsyncIterator[str]:
    """Serve the API and the console with uvicorn inside the caller's event loop until the block exits;
    yields the base URL. ``port=0`` picks a free port.

    ``app_options`` go to ``create_app`` (authenticator, evidence_store, tuning, max_body_bytes, ...);
    ``app`` serves an app already built by ``create_app`` instead.
    """
    app = app if app is not None else create_app(settings, client, **app_options)
    async with serve_app(
        app,
        host=host or settings.api.host,
        port=settings.api.port if port is None else port,
        startup_timeout=startup_timeout,
    ) as (url, _):
        yield url


async def run(settings: Settings) -> None:
    """Serve the API and the console against the configured Temporal until cancelled (``pausegate api``)."""
    from pausegate.logging import configure
    from pausegate.observability.tracing import setup_tracing
    from pausegate.temporal.client import connect

    configure()
    setup_tracing(settings.observability, "api")
    client = await connect(settings.temporal, settings.encryption)
    async with serve(settings, client) as url:
        print(f"pausegate API on {url} (OpenAPI: {url}/openapi.json)", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m pausegate.app [--config FILE]``: serve, as one replica of a deployment runs it."""
    import argparse
    import contextlib
    from pathlib import Path

    from pausegate.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m pausegate.app", description=main.__doc__)
    parser.add_argument("--config", type=Path, help="configuration file (default: $PAUSEGATE_CONFIG)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(load_settings(args.config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
