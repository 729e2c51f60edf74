"""The API's shared database's failures as HTTP answers: 503 with Retry-After, never a 500."""

from __future__ import annotations

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from pausegate.api.models import ErrorBody
from pausegate.errors import StateUnavailable

log = structlog.get_logger(__name__)


async def state_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The error's text may name the host or the role; it goes to the log, not to the caller.
    log.error("state_database_unavailable", error=str(exc)[:300], kind=type(exc).__name__)
    answer = StateUnavailable()
    return JSONResponse(ErrorBody(error=answer.code, detail=answer.detail, problems=[]).model_dump(),
                        status_code=answer.status, headers=answer.headers)


def install_database_error_handlers(app: FastAPI) -> None:
    """Answer a failure of the API's database anywhere in a route (users, refusal log) 503."""
    app.add_exception_handler(psycopg.OperationalError, state_unavailable)
    app.add_exception_handler(PoolTimeout, state_unavailable)
