"""Serving an ASGI app with uvicorn inside the caller's event loop (API, reference fleet, chat sink)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the process embedding it.

    A stock server installs SIGINT/SIGTERM handlers while it serves, so Ctrl-C would stop
    only that one server and the process would hang on.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def base_url(server: uvicorn.Server, host: str) -> str:
    """The URL a started server listens on (port 0 asks the OS for a free port)."""
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def serve_app(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0, **config: Any
) -> AsyncIterator[tuple[str, EmbeddedServer]]:
    """Serve ``app`` until the block exits; yields its base URL and the server."""
    options: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "on", "server_header": False}
    options.update(config)
    server = EmbeddedServer(uvicorn.Config(app, host=host, port=port, **options))
    task = asyncio.create_task(server.serve(), name=f"serve-{host}:{port}")
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if task.done():
                # Startup failed (port taken, lifespan error): surface uvicorn's reason.
                raise RuntimeError(f"could not serve on {host}:{port}") from task.exception()
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not serve on {host}:{port} within {startup_timeout} s")
            await asyncio.sleep(0.01)
        yield base_url(server, host), server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
