"""The HTTP API: the only way people act on a pause.

Every route acts as the actor the bearer token proves (see ``gate``); request bodies never
name one. This module only assembles the app: the shared state (``state``), the routes
(``routes``, one router per resource), the error handlers (``handlers``) and the gate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from pausegate.api.backends import open_backends
from pausegate.api.browsers import BrowserSessions
from pausegate.api.cors import CodecCors
from pausegate.api.database_errors import install_database_error_handlers
from pausegate.api.gate import MAX_BODY_BYTES, Gate
from pausegate.api.handlers import install_error_handlers
from pausegate.api.limiter import PauseLimiter
from pausegate.api.limits import ActionLimits
from pausegate.api.routes import api_router, codec
from pausegate.api.state import ApiState
from pausegate.auth import Authenticator, build_authenticator
from pausegate.config import Settings
from pausegate.evidence.interface import EvidenceStore
from pausegate.models.state import Tuning
from pausegate.observability.api_metrics import install_api_metrics
from pausegate.observability.tracing import instrument_api

API_VERSION = "1.0.0"


def create_app(
    settings: Settings,
    client: Client,
    *,
    authenticator: Authenticator | None = None,
    evidence_store: EvidenceStore | None = None,
    tuning: Tuning | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    limits: ActionLimits | None = None,
    browsers: BrowserSessions | None = None,
) -> FastAPI:
    """The API as an ASGI app.

    Args:
        settings: deployment configuration (``api`` section: runbooks, users file, OIDC, update limit).
        client: a Temporal client built by ``pausegate.temporal.client.connect``.
        authenticator: who may call; default: local tokens where the deployment keeps its users (the
            users file, or the API's database: ``pausegate.api.backends``) plus OIDC when ``settings.api.oidc``
            is set.
        evidence_store: where reports and scope documents are read; default: ``settings.evidence``.
            The refusal log signs its head with the store's ``signing_key``, so the store needs one
            (``LocalEvidenceStore`` has it).
        tuning: workflow timing for pauses this API starts (tests shrink it).
        max_body_bytes: larger request bodies are answered 413.
        limits: each actor's rate limit and share of a pause's update queue (``ActionLimits``'s defaults
            when None); the slots per pause are ``settings.api.max_updates_in_flight_per_pause``.
        browsers: the sessions of another face this app serves (the web console, mounted by ``pausegate.app``):
            the gate leaves its paths to it, and the codec endpoint accepts its session cookie.
    """
    limits = limits or ActionLimits()
    # Users, refusals, rate limits and update slots: in files and memory, or in the database every replica shares.
    backends = open_backends(settings, limits)
    http: httpx.AsyncClient | None = None
    if authenticator is None:
        http = httpx.AsyncClient()
        authenticator = build_authenticator(settings, http, local=backends.tokens)

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        # Refusal counts pending at the end of their minute are recorded by this background task;
        # stopping it records whatever is still pending.
        recorder = application.state.api.recorder
        await backends.open()  # migrations first; a replica without its database does not start
        recorder.start()
        try:
            yield
        finally:
            await recorder.stop()
            await backends.close()
            if http is not None:
                await http.aclose()

    app = FastAPI(
        title="pausegate",
        version=API_VERSION,
        summary="Pause a data-collection program, prove the pause, resume it only after a signed-off review.",
        description=(
            "Every request carries a bearer token (a local token or an OIDC JWT); the verified caller "
            "is the actor of every action. Errors are JSON `{error, detail, problems}`."
        ),
        lifespan=lifespan,
    )
    app.state.api = ApiState(
        settings=settings,
        client=client,
        authenticator=authenticator,
        limiter=PauseLimiter(
            settings.api.max_updates_in_flight_per_pause,
            max_queued=limits.max_queued,
            per_actor_queued=limits.per_actor_queued,
            per_actor_in_flight=limits.per_actor_in_flight,
            refused_spacing=limits.refused_spacing,
            wait_budget=limits.wait_seconds,
            shared=backends.slots,
        ),
        tuning=tuning,
        evidence_store=evidence_store,
        limits=limits,
        backends=backends,
    )
    install_error_handlers(app)
    if backends.database is not None:
        install_database_error_handlers(app)
    app.include_router(api_router)
    app.include_router(codec.router)  # Temporal's codec protocol for the Web UI (docs/encryption.md)
    app.state.browsers = browsers  # the codec endpoint's second way in (pausegate.api.routes.codec)

    @app.get("/healthz", tags=["meta"], include_in_schema=True)
    async def healthz() -> dict[str, str]:
        """Liveness (no token needed; says nothing about pauses)."""
        return {"status": "ok"}

    app.add_middleware(Gate, authenticator=authenticator, max_body_bytes=max_body_bytes, browsers=browsers)
    # outside the gate: a CORS preflight carries no token
    app.add_middleware(CodecCors, origin=settings.encryption.ui_origin if settings.encryption else None)
    # Server spans (outermost, so refusals at the gate are traced too) and /metrics.
    if settings.observability.api_metrics:
        install_api_metrics(app, client, settings.temporal.task_queue)
    instrument_api(app)
    return app
