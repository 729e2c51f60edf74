"""Running the fleet over a real socket: in an asyncio task, or in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from pausegate.reference.fleet.app import create_app
from pausegate.reference.fleet.settings import FleetSettings
from pausegate.serving import EmbeddedServer

STARTUP_TIMEOUT = 15.0


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free one, and binding here (not in uvicorn) tells us which."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(app: FastAPI) -> uvicorn.Server:
    # log_config=None: the host process owns logging; access logs would drown the fleet's own events.
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    return EmbeddedServer(config)


@dataclass
class RunningFleet:
    """A fleet serving on ``url``; ``app.state.service`` is its in-memory state."""

    url: str
    app: FastAPI
    server: uvicorn.Server


@contextlib.asynccontextmanager
async def serve_fleet(
    settings: FleetSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningFleet]:
    """Serve a fleet from the current event loop for the duration of the block."""
    app = create_app(settings)
    server = make_server(app)
    sock = bind(host, port)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="fleet-server")
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("fleet server stopped during startup")
                await asyncio.sleep(0.01)
        yield RunningFleet(url=_url(sock), app=app, server=server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


class ThreadedFleet:
    """A fleet serving from its own thread and event loop, for synchronous callers (launchers)."""

    def __init__(
        self, settings: FleetSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = create_app(settings)
        self.server = make_server(self.app)
        self._sock = bind(host, port)
        self.url = _url(self._sock)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self._sock])),
            name="fleet-server",
            daemon=True,
        )

    def start(self) -> ThreadedFleet:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("fleet server stopped during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("fleet server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(STARTUP_TIMEOUT)
        self._sock.close()

    def __enter__(self) -> ThreadedFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
