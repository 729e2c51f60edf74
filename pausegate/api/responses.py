"""The error responses routes declare in the OpenAPI document (bodies are ``ErrorBody``)."""

from __future__ import annotations

from typing import Any

from pausegate.api.models import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or one that proves nobody."},
    403: {
        "model": ErrorBody,
        "description": "Authenticated, but the caller's roles do not allow this; recorded in the pause's timeline, "
        "or in the API's refusal log when the caller holds no role in the program (coalesced per minute).",
    },
    404: {"model": ErrorBody, "description": "Unknown program, pause or checklist item."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    422: {
        "model": ErrorBody,
        "description": "Invalid input, or refused by the review policy (missing evidence, "
        "invalid plan, unmet dependency).",
    },
    503: {
        "model": ErrorBody,
        "description": "Temporal unreachable or the pause busy; retry after Retry-After.",
    },
}
"""What any route under /v1 may answer."""

ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {
        "model": ErrorBody,
        "description": "Conflicts with the pause's state (wrong state, stale digest, already approved, no plan).",
    },
    429: {
        "model": ErrorBody,
        "description": "The caller's rate limit, or their share of the pause's queue, is used up; nothing was "
        "applied; retry after Retry-After.",
    },
}
"""What a route that acts on a pause may answer besides."""
