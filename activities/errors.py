"""The project's errors become ApplicationErrors of the same name at the activity boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from pausegate.errors import PausegateError


@contextmanager
def as_application_errors() -> Iterator[None]:
    """Raise pausegate errors as ApplicationErrors typed by class, non-retryable where retrying cannot help."""
    try:
        yield
    except PausegateError as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable) from None
