"""The project's own errors, as one tree.

    PausegateError
    ├── ConfigError                 deployment configuration is missing or wrong
    │   └── UnknownConnectionError  a runbook names a connection the worker does not have
    ├── RunbookError                a runbook file does not validate (carries every problem)
    ├── ConnectorError              a target system failed
    │   ├── TargetUnavailableError  transient: retry (network, 5xx, timeouts)
    │   └── TargetRejectedError     permanent: the target refused the request (4xx, bad input)
    └── EvidenceError               evidence is missing, corrupt or would be overwritten

At the activity boundary these become ``ApplicationError`` types of the same name
(``TargetRejectedError`` and ``ConfigError`` non-retryable); at the API boundary,
HTTP status codes.
"""

from __future__ import annotations


class PausegateError(Exception):
    """Base of every error pausegate raises on purpose."""


class ConfigError(PausegateError):
    """The deployment configuration is missing or wrong."""


class UnknownConnectionError(ConfigError):
    """A runbook names a connection that the worker's configuration does not define."""


class RunbookError(PausegateError):
    """A runbook does not validate; ``problems`` lists every one with its location."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ConnectorError(PausegateError):
    """A target system (fleet, database, evidence store, webhook) failed."""


class TargetUnavailableError(ConnectorError):
    """The target could not be reached or failed transiently; the call may be retried."""


class TargetRejectedError(ConnectorError):
    """The target refused the request; retrying the same request cannot succeed."""


class EvidenceError(PausegateError):
    """Evidence is missing, corrupt, or a write would replace sealed evidence."""


NON_RETRYABLE_ERRORS: tuple[str, ...] = (
    "TargetRejectedError",
    "ConfigError",
    "UnknownConnectionError",
    "EvidenceError",
)
