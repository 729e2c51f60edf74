"""Run the API with uvicorn inside the caller's event loop (the embedded stack, tests)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from temporalio.client import Client

from pausegate.config import Settings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process that embeds the API owns Ctrl-C; uvicorn must not take it over.
        yield


@asynccontextmanager
async def serve_api(
    settings: Settings,
    client: Client,
    *,
    host: str | None = None,
    port: int | None = None,
    startup_timeout: float = 30.0,
    app: Any = None,
    **app_options: Any,
) -> AsyncIterator[str]:
    """Serve the API until the block exits; yields its base URL. ``port=0`` picks a free port.

    ``app_options`` go to ``create_app`` (authenticator, evidence_store, tuning, max_body_bytes);
    ``app`` serves an app already built by ``create_app`` instead.
    """
    from pausegate.api.app import create_app

    host = host or settings.api.host
    port = settings.api.port if port is None else port
    app = app if app is not None else create_app(settings, client, **app_options)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on", server_header=False
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="pausegate-api")
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if task.done():
            # Startup failed (port taken, lifespan error): surface uvicorn's reason.
            exc = task.exception()
            raise RuntimeError(f"the API did not start on {host}:{port}") from exc
        if time.monotonic() > deadline:
            server.should_exit = True
            await task
            raise RuntimeError(f"the API did not start on {host}:{port} within {startup_timeout} s")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{bound[1]}"
    finally:
        server.should_exit = True
        await task
