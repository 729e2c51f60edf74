"""A reference Slack-compatible webhook receiver that keeps what it receives in memory.

The embedded stack points its webhook connections here so notifications can be seen
without a chat service, and tests read them back. Like Slack it answers ``ok`` or a short
error token; optional latency and a failure rate make it behave like a real, imperfect
service so that retries are exercised.

    POST   /hooks/{hook}     receive a message (JSON with text and/or blocks)
    GET    /messages         received messages, oldest first (?hook= filters)
    DELETE /messages         forget them
    GET    /healthz
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from pausegate.serving import EmbeddedServer


class ChatMessage(BaseModel):
    """One message as received."""

    hook: str
    received_at: datetime
    text: str
    payload: dict[str, Any]
    fields: dict[str, str] = Field(default_factory=dict)


def _fields_of(payload: dict[str, Any]) -> dict[str, str]:
    """Section-block fields written as ``*key*\\nvalue`` back into a mapping, for assertions."""
    fields: dict[str, str] = {}
    for block in payload.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        for item in block.get("fields") or []:
            text = item.get("text", "") if isinstance(item, dict) else ""
            key, sep, value = str(text).partition("\n")
            if sep and key.startswith("*") and key.endswith("*"):
                fields[key.strip("*")] = value
    return fields


class ChatSink:
    """The receiver's state and its ASGI app.

    ``hooks`` limits which hook ids exist (others get 404 ``no_service``, as Slack answers a
    revoked webhook); ``error_rate`` answers that share of posts with 500 or 429 at random.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        error_rate: float = 0.0,
        hooks: set[str] | None = None,
        seed: int | None = None,
        max_messages: int = 10_000,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        self.latency = latency
        self.error_rate = error_rate
        self.hooks = hooks
        self.max_messages = max_messages
        self.messages: list[ChatMessage] = []
        self._random = random.Random(seed)
        self.app = self._build_app()

    def received(self, hook: str | None = None) -> list[ChatMessage]:
        return [m for m in self.messages if hook is None or m.hook == hook]

    def clear(self) -> None:
        self.messages.clear()

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="pausegate chat sink", docs_url=None, redoc_url=None)

        @app.post("/hooks/{hook:path}")
        async def receive(hook: str, request: Request) -> PlainTextResponse:
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.hooks is not None and hook not in self.hooks:
                return PlainTextResponse("no_service", status_code=404)
            if self.error_rate and self._random.random() < self.error_rate:
                if self._random.random() < 0.5:
                    return PlainTextResponse("rate_limited", status_code=429, headers={"Retry-After": "1"})
                return PlainTextResponse("internal_error", status_code=500)
            try:
                payload = await request.json()
            except ValueError:
                return PlainTextResponse("invalid_payload", status_code=400)
            if not isinstance(payload, dict) or not (
                isinstance(payload.get("text"), str) or isinstance(payload.get("blocks"), list)
            ):
                return PlainTextResponse("invalid_payload", status_code=400)
            if len(self.messages) >= self.max_messages:
                # Bounded: a long-running embedded stack must not grow without end.
                del self.messages[0]
            self.messages.append(
                ChatMessage(
                    hook=hook,
                    received_at=datetime.now(UTC),
                    text=str(payload.get("text", "")),
                    payload=payload,
                    fields=_fields_of(payload),
                )
            )
            return PlainTextResponse("ok")

        @app.get("/messages")
        async def messages(hook: str | None = None) -> list[ChatMessage]:
            return self.received(hook)

        @app.delete("/messages")
        async def clear() -> JSONResponse:
            self.clear()
            return JSONResponse({"cleared": True})

        @app.get("/healthz")
        async def healthz() -> JSONResponse:
            return JSONResponse({"ok": True})

        return app


class RunningSink:
    """A ChatSink served by uvicorn on a real socket in the current event loop."""

    def __init__(self, sink: ChatSink, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sink = sink
        self._config = uvicorn.Config(sink.app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = EmbeddedServer(self._config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hook_url(self, hook: str) -> str:
        return f"{self.url}/hooks/{hook}"

    async def start(self) -> RunningSink:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raises why the server could not start
                raise RuntimeError("chat sink stopped before it started")
            await asyncio.sleep(0.01)
        # Port 0 asks the OS for a free port; read back which one it gave.
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> RunningSink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def main() -> None:
    """Serve a chat sink: ``python -m pausegate.reference.chat_sink --port 8099``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds to wait before answering.")
    parser.add_argument("--error-rate", type=float, default=0.0, help="Share of posts answered 500/429.")
    args = parser.parse_args()
    sink = ChatSink(latency=args.latency, error_rate=args.error_rate)
    uvicorn.run(sink.app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
