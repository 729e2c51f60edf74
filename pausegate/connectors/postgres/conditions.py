"""Reading what a resume plan's conditions depend on in PostgreSQL: who consented, and whether rows
collected since the resume carry a data type the plan dropped. Read-only; names are quoted identifiers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.runbook import ConsentSpec

MAX_CONSENT_ROWS = 5_000_000  # a consent table larger than any workforce is a mistake, not a workforce


class PostgresConditions:
    """The queries of the conditions check, through an administrative connection (``dsn``)."""

    def __init__(self, dsn: str, *, connect_timeout_s: int = 10, statement_timeout_ms: int = 60_000) -> None:
        self._dsn = dsn
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms

    @asynccontextmanager
    async def _connect(self, what: str) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            conn = await AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s,
                options=f"-c statement_timeout={self._statement_timeout_ms} -c default_transaction_read_only=on",
            )
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: cannot connect to PostgreSQL: {e}".strip()) from e
        try:
            async with conn:
                yield conn
        except psycopg.errors.UndefinedTable as e:
            raise TargetRejectedError(f"{what}: {e.diag.message_primary}") from e
        except psycopg.errors.UndefinedColumn as e:
            raise TargetRejectedError(f"{what}: {e.diag.message_primary}") from e
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: {e}".strip()) from e
        except psycopg.Error as e:
            raise TargetRejectedError(f"{what}: PostgreSQL refused: {e}".strip()) from e

    async def consenting(self, schema: str, spec: ConsentSpec) -> set[str]:
        """The employees whose consent is recorded as granted (true; no row or false is no consent)."""
        query = sql.SQL("SELECT {subject} FROM {table} WHERE {granted} IS TRUE LIMIT {limit}").format(
            subject=sql.Identifier(spec.subject_column), table=sql.Identifier(schema, spec.table),
            granted=sql.Identifier(spec.granted_column), limit=sql.Literal(MAX_CONSENT_ROWS + 1),
        )
        async with self._connect(f"reading consent from {schema}.{spec.table}") as conn:
            rows = await (await conn.execute(query)).fetchall()
        if len(rows) > MAX_CONSENT_ROWS:
            raise TargetRejectedError(f"consent table {schema}.{spec.table} has more than {MAX_CONSENT_ROWS} "
                                      "granted rows")
        return {str(r[0]) for r in rows if r[0] is not None}

    async def rows_carrying(self, schema: str, table: str, columns: list[str], collected_at: str,
                            since: datetime) -> int:
        """Rows collected at or after ``since`` with a value in any of ``columns``."""
        any_value = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns)
        query = sql.SQL("SELECT count(*) FROM {table} WHERE {at} >= %s AND ({any})").format(
            table=sql.Identifier(schema, table), at=sql.Identifier(collected_at), any=any_value,
        )
        async with self._connect(f"checking {schema}.{table} for dropped data types") as conn:
            row = await (await conn.execute(query, (since,))).fetchone()
        return int(row[0]) if row else 0
