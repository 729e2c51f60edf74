"""Every error a route lets escape, answered as JSON ``ErrorBody`` with the status ``errors`` assigns.

``answer_of`` is the one mapping from an error to its answer; the console shows the same answer as a
page (``pausegate.console.bridge.refusal_of``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from pausegate.api.errors import ApiError, refusal_status
from pausegate.api.models import ErrorBody
from pausegate.errors import ActionRefused, EvidenceError, PauseNotFound

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ErrorAnswer:
    """How one error is answered, whichever face shows it: the JSON API here, the console as a page
    (``pausegate.console.bridge``)."""

    status: int
    code: str
    detail: str
    problems: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


TEMPORAL_UNAVAILABLE = (
    "the workflow service did not answer; nothing was applied unless the pause's timeline shows it; retry"
)

TEMPORAL_BUSY = (
    "the workflow service refused the request for lack of capacity (the namespace's request rate); nothing "
    "was applied; retry after the time Retry-After gives"
)

TEMPORAL_ERRORS = (RPCError, WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError)
"""Temporal unreachable or refusing, or an update that timed out: nothing is known to be applied."""

ANSWERED = (ApiError, ActionRefused, PauseNotFound, EvidenceError, *TEMPORAL_ERRORS)
"""The errors ``answer_of`` answers (``Overloaded`` and ``StateUnavailable`` among them: both are ``ApiError``)."""


def answer_of(exc: Exception) -> ErrorAnswer | None:
    """The answer to one of the errors a route lets escape (``ANSWERED``); None for anything else (a bug)."""
    if isinstance(exc, ApiError):
        return ErrorAnswer(exc.status, exc.code, exc.detail, list(exc.problems), dict(exc.headers))
    if isinstance(exc, ActionRefused):
        return ErrorAnswer(refusal_status(exc.code), exc.code, exc.reason)
    if isinstance(exc, PauseNotFound):
        return ErrorAnswer(404, "no_pause", str(exc))
    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        # Past the Temporal client's own retries: the namespace's request rate (or another quota) is spent.
        log.warning("temporal_busy", error=str(exc)[:500])
        return ErrorAnswer(503, "temporal_unavailable", TEMPORAL_BUSY, headers={"Retry-After": "2"})
    if isinstance(exc, TEMPORAL_ERRORS):
        log.warning("temporal_unavailable", error=str(exc)[:500], kind=type(exc).__name__)
        return ErrorAnswer(503, "temporal_unavailable", TEMPORAL_UNAVAILABLE, headers={"Retry-After": "2"})
    if isinstance(exc, EvidenceError):
        log.error("evidence_unreadable", error=str(exc)[:500])
        return ErrorAnswer(503, "evidence_unavailable", str(exc)[:500], headers={"Retry-After": "5"})
    return None


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


async def answered(_: Request, exc: Exception) -> JSONResponse:
    answer = answer_of(exc)
    assert answer is not None
    return _error(answer.status, answer.code, answer.detail, problems=answer.problems, headers=answer.headers)


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
    for kind in ANSWERED:
        app.add_exception_handler(kind, answered)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
