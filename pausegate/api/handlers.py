"""Every error a route lets escape, answered as JSON ``ErrorBody`` with the status ``errors`` assigns."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from pausegate.api.errors import ApiError, Overloaded, refusal_status
from pausegate.api.models import ErrorBody
from pausegate.errors import ActionRefused, EvidenceError, PauseNotFound

log = structlog.get_logger(__name__)


def _error(
    status_code: int,
    code: str,
    detail: str,
    *,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


async def api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.code, exc.detail, problems=exc.problems, headers=exc.headers)


async def refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ActionRefused)
    return _error(refusal_status(exc.code), exc.code, exc.reason)


async def not_found(_: Request, exc: Exception) -> JSONResponse:
    return _error(404, "no_pause", str(exc))


async def overloaded(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Overloaded)
    return _error(503, "busy", exc.detail, headers={"Retry-After": str(exc.retry_after)})


async def temporal_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("temporal_unavailable", error=str(exc)[:500], kind=type(exc).__name__)
    return _error(
        503,
        "temporal_unavailable",
        "the workflow service did not answer; nothing was applied unless the pause's timeline shows it; retry",
        headers={"Retry-After": "2"},
    )


async def evidence_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("evidence_unreadable", error=str(exc)[:500])
    return _error(503, "evidence_unavailable", str(exc)[:500], headers={"Retry-After": "5"})


async def invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
    return _error(422, "invalid_request", "the request does not validate", problems=problems[:50])


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    return _error(
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        str(exc.detail),
        headers=dict(exc.headers or {}),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ActionRefused, refused)
    app.add_exception_handler(PauseNotFound, not_found)
    app.add_exception_handler(Overloaded, overloaded)
    app.add_exception_handler(RPCError, temporal_down)
    app.add_exception_handler(WorkflowQueryFailedError, temporal_down)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, temporal_down)
    app.add_exception_handler(EvidenceError, evidence_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
