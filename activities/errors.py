"""The project's errors become ApplicationErrors of the same name at the activity boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from pausegate.errors import PausegateError
from pausegate.logging import redact


@contextmanager
def as_application_errors() -> Iterator[None]:
    """Raise pausegate errors as ApplicationErrors typed by class, non-retryable where retrying cannot help."""
    try:
        yield
    except PausegateError as exc:
        # The text becomes workflow history and the timeline: never a credential from a connection URL.
        raise ApplicationError(redact(str(exc)), type=type(exc).__name__, non_retryable=not exc.retryable) from None
