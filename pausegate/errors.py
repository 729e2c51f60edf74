"""The project's own errors, as one tree.

    PausegateError
    ├── ConfigError                 deployment configuration is missing or wrong           (final)
    │   ├── UnknownConnectionError  a runbook names a connection the worker does not have  (final)
    │   └── HistoryKeyError         a payload needs a history encryption key not configured (final)
    ├── RunbookError                a runbook file does not validate (carries every problem)
    ├── ConnectorError              a target system failed                                 (retried)
    │   ├── TargetUnavailableError  transient: network, 5xx, timeouts                      (retried)
    │   └── TargetRejectedError     the target refused the request (4xx, bad input)        (final)
    ├── EvidenceError               evidence is missing, corrupt or would be overwritten   (final)
    ├── ActionRefused               a rule said no: ``code`` for programs, ``reason`` for people
    ├── PauseNotFound               no pause exists for that program
    ├── ApiError                    an HTTP answer other than 2xx (status, code, detail)
    │   ├── Overloaded              503 + Retry-After: the pause's update slots stayed full
    │   └── StateUnavailable        503 + Retry-After: the API's shared database did not answer
    └── ApiUnreachable              the API could not be reached (or kept answering 503)

``retryable`` is a property of the class: at the activity boundary each error becomes an
``ApplicationError`` of the same type name, non-retryable where retrying cannot help; at the
API boundary, an HTTP status code.
"""

from __future__ import annotations

from typing import ClassVar


class PausegateError(Exception):
    """Base of every error pausegate raises on purpose."""

    retryable: ClassVar[bool] = True
    """Whether repeating the same call may succeed (an activity retries it; otherwise it fails at once)."""


class ConfigError(PausegateError):
    """The deployment configuration is missing or wrong."""

    retryable = False


class UnknownConnectionError(ConfigError):
    """A runbook names a connection that the worker's configuration does not define."""


class HistoryKeyError(ConfigError):
    """A history payload cannot be decoded with the configured keys: its key id is unknown, it is not
    encrypted where encryption is required, or it does not authenticate under its key."""


class RunbookError(PausegateError):
    """A runbook does not validate; ``problems`` lists every one with its location."""

    retryable = False

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ConnectorError(PausegateError):
    """A target system (fleet, database, evidence store, webhook) failed."""


class TargetUnavailableError(ConnectorError):
    """The target could not be reached or failed transiently; the call may be retried."""


class TargetRejectedError(ConnectorError):
    """The target refused the request; retrying the same request cannot succeed."""

    retryable = False


class EvidenceError(PausegateError):
    """Evidence is missing, corrupt, or a write would replace sealed evidence."""

    retryable = False


class ActionRefused(PausegateError):
    """A rule refused an action: ``code`` says why for programs, ``reason`` for people.

    Raised by the pure rules in ``pausegate.policy``, turned into a rejected update by the
    workflow, raised again on the client side when the workflow rejects an update.
    """

    retryable = False

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


class PauseNotFound(PausegateError):
    """No pause exists for that program."""

    retryable = False


class ApiError(PausegateError):
    """An HTTP answer other than 2xx: ``status``, a machine ``code`` and a ``detail`` for people."""

    retryable = False

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        problems: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.problems = problems or []
        self.headers = headers or {}
        super().__init__(f"{status} {code}: {detail}")


class Overloaded(ApiError):
    """A pause's updates stayed refused for lack of capacity; the caller should retry later."""

    retryable = True

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(503, "busy", detail, headers={"Retry-After": str(retry_after)})


class StateUnavailable(ApiError):
    """The database the API replicas share (``api.state = "postgres"``, ``pausegate.apidb``) did not answer;
    nothing was applied. Also raised while authenticating: a database outage is not an invalid token."""

    retryable = True

    def __init__(self, detail: str = "the API's state database did not answer; nothing was applied, retry shortly",
                 retry_after: int = 5) -> None:
        self.retry_after = retry_after
        super().__init__(503, "state_unavailable", detail, headers={"Retry-After": str(retry_after)})


class ApiUnreachable(PausegateError):
    """The API could not be reached (or kept answering 503)."""


def _final_types(cls: type[PausegateError]) -> list[str]:
    names = [] if cls.retryable else [cls.__name__]
    for sub in cls.__subclasses__():
        names.extend(_final_types(sub))
    return names


def non_retryable_error_types() -> list[str]:
    """The ApplicationError types a retry policy must not retry: every final class of the tree."""
    return sorted(set(_final_types(PausegateError)))
