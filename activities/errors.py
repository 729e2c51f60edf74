"""The project's errors become ApplicationErrors of the same name at the activity boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from pausegate.errors import NON_RETRYABLE_ERRORS, PausegateError


@contextmanager
def as_application_errors() -> Iterator[None]:
    """Raise pausegate errors as ApplicationErrors typed by class, non-retryable where retrying cannot help."""
    try:
        yield
    except PausegateError as exc:
        name = type(exc).__name__
        raise ApplicationError(str(exc), type=name, non_retryable=name in NON_RETRYABLE_ERRORS) from None
