"""The administrative connection the access connector works through, and how PostgreSQL's errors
become the project's: a lost connection or a lock timeout is worth retrying, a missing privilege or
a refused statement is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from pausegate.errors import TargetRejectedError, TargetUnavailableError

MAX_LISTED = 200
"""Roles, grants or violations listed in a result; the counts carry the rest."""


@asynccontextmanager
async def admin_connection(
    dsn: str, what: str, *, lock_timeout_ms: int, connect_timeout_s: int
) -> AsyncIterator[AsyncConnection[Any]]:
    """An autocommit connection with ``lock_timeout`` set; errors raised inside name ``what``."""
    try:
        conn = await AsyncConnection.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)
    except psycopg.OperationalError as e:
        raise TargetUnavailableError(f"{what}: cannot connect to PostgreSQL: {e}".strip()) from e
    try:
        async with conn:
            await conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
            yield conn
    except psycopg.errors.InsufficientPrivilege as e:
        raise TargetRejectedError(
            f"{what}: the administrative connection lacks a privilege it needs: {e.diag.message_primary}"
        ) from e
    except psycopg.OperationalError as e:
        # Lost connections, lock timeouts, cancels, serialization failures: worth retrying.
        raise TargetUnavailableError(f"{what}: {e}".strip()) from e
    except psycopg.Error as e:
        raise TargetRejectedError(f"{what}: PostgreSQL refused: {e}".strip()) from e
