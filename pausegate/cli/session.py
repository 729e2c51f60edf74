"""A connection to the API for one command, every failure turned into a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pausegate.cli.api_client import PausegateClient, UnreadableAnswer, load_client_config
from pausegate.cli.exits import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, fail
from pausegate.errors import ApiError, ApiUnreachable, ConfigError


@contextmanager
def connect(as_json: bool) -> Iterator[PausegateClient]:
    """A client configured from the environment (or the CLI config file), closed afterwards."""
    try:
        url, token = load_client_config()
    except ConfigError as exc:
        fail(EXIT_USAGE, str(exc), as_json=as_json, error="config")
    client = PausegateClient(url, token)
    try:
        yield client
    except ApiError as exc:
        detail = exc.detail + ("".join(f"\n  {p}" for p in exc.problems) if exc.problems else "")
        if exc.status == 404:
            fail(EXIT_NOT_FOUND, detail, as_json=as_json, error=exc.code)
        if exc.status >= 500:
            fail(EXIT_UNAVAILABLE, f"the API failed ({exc.status}): {detail}", as_json=as_json, error=exc.code)
        fail(EXIT_REFUSED, f"refused ({exc.status} {exc.code}): {detail}", as_json=as_json, error=exc.code)
    except ApiUnreachable as exc:
        fail(EXIT_UNAVAILABLE, str(exc), as_json=as_json, error="unreachable")
    except UnreadableAnswer as exc:
        fail(EXIT_UNAVAILABLE, str(exc), as_json=as_json, error="unreadable_answer")
    finally:
        client.close()
