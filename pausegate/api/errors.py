"""From the project's errors (``pausegate.errors``) to HTTP status codes.

ApiError                    raised by the routes themselves (status chosen there)
ActionRefused(code)         a rule said no: see REFUSAL_STATUS
PauseNotFound               404
Overloaded                  503 + Retry-After (the pause's update slots stayed exhausted)
Throttled                   429 + Retry-After (the caller's rate limit or queue share is used up)
StateUnavailable            503 + Retry-After (the replicas' shared database, pausegate.apidb, did not answer)
RPCError (Temporal)         503 + Retry-After (Temporal unreachable or refusing)
"""

from __future__ import annotations

from fastapi import status

from pausegate.errors import ApiError, Overloaded, StateUnavailable


class Throttled(ApiError):
    """429: the caller sent more actions than their share; nothing was applied, retry after ``retry_after``."""

    retryable = True

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(429, "rate_limited", detail, headers={"Retry-After": str(retry_after)})


# Refusal codes of pausegate.policy.review and the status each becomes.
REFUSAL_STATUS: dict[str, int] = {
    "wrong_role": status.HTTP_403_FORBIDDEN,
    "separation_of_duties": status.HTTP_403_FORBIDDEN,
    # Already done by this person or role: the request conflicts with recorded state.
    "duplicate_approval": status.HTTP_409_CONFLICT,
    "duplicate_role": status.HTTP_409_CONFLICT,
    "stale_plan": status.HTTP_409_CONFLICT,
    "wrong_state": status.HTTP_409_CONFLICT,
    "no_plan": status.HTTP_409_CONFLICT,
    "nothing_to_waive": status.HTTP_409_CONFLICT,
    "not_blocked": status.HTTP_409_CONFLICT,
    # The item is named in the URL, so an unknown one is a missing resource; agents are in the body.
    "unknown_item": status.HTTP_404_NOT_FOUND,
    "unknown_agent": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "missing_evidence": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "invalid_plan": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "unmet_dependency": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "duplicate_evidence": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "ambiguous_role": status.HTTP_422_UNPROCESSABLE_CONTENT,
    # Signed approvals (pausegate.approvals): not proven by the approver's own key, or a statement of
    # something other than this approval.
    "signature_required": status.HTTP_403_FORBIDDEN,
    "bad_signature": status.HTTP_403_FORBIDDEN,
    "unknown_key": status.HTTP_403_FORBIDDEN,
    "bad_statement": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "no_such_key": status.HTTP_404_NOT_FOUND,
    # Break-glass (pausegate.policy.break_glass): the grant is named in the URL; what a request asks is in the body.
    "unknown_grant": status.HTTP_404_NOT_FOUND,
    "unknown_dataset": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "not_in_dataset": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "unknown_copy": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "too_long": status.HTTP_422_UNPROCESSABLE_CONTENT,
}
DEFAULT_REFUSAL_STATUS = status.HTTP_409_CONFLICT


def refusal_status(code: str) -> int:
    """The HTTP status of a refusal code; unknown codes are conflicts with the pause's state."""
    return REFUSAL_STATUS.get(code, DEFAULT_REFUSAL_STATUS)


__all__ = [
    "DEFAULT_REFUSAL_STATUS", "REFUSAL_STATUS", "ApiError", "Overloaded", "StateUnavailable", "Throttled",
    "refusal_status",
]
