"""Run the API with uvicorn inside the caller's event loop (the embedded stack, tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from pausegate.config import Settings
from pausegate.embedded.serving import serve_app


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

    app = app if app is not None else create_app(settings, client, **app_options)
    async with serve_app(
        app,
        host=host or settings.api.host,
        port=settings.api.port if port is None else port,
        startup_timeout=startup_timeout,
    ) as (url, _):
        yield url
