"""Asking the program's dataset when the data stopped: rows collected after the switch went off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from temporalio import activity

from activities.heartbeat import running
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.data_stop import DataStop, DataStopInput

STATEMENT_TIMEOUT_MS = 60_000


def _query(schema: str, table: str, column: str) -> sql.Composed:
    # Two index-friendly aggregates per table: the rows after the switch, and the last row before it.
    return sql.SQL(
        "SELECT count(*), max({c}), (SELECT max({c}) FROM {t} WHERE {c} <= %(off)s)"
        " FROM {t} WHERE {c} > %(off)s"
    ).format(c=sql.Identifier(column), t=sql.Identifier(schema, table))


class DataStopActivities:
    """The data-stop check, over the datasets' configured connections (by name)."""

    def __init__(self, dsn: Callable[[str], str]) -> None:
        self._dsn = dsn

    @activity.defn(name="check_data_stop")
    async def check_data_stop(self, input: DataStopInput) -> DataStop:
        """Rows in the program's tables collected after the switch went off (counted, never read)."""
        async with running():
            rows, last_after, last_before = 0, None, None
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn(input.connection), autocommit=True,
                    options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                ) as conn:
                    for table in input.tables:
                        cur = await conn.execute(_query(input.schema_name, table, input.written_at),
                                                 {"off": input.switch_off_at})
                        row = await cur.fetchone()
                        assert row is not None
                        count, after, before = row
                        rows += int(count)
                        last_after = max(filter(None, (last_after, after)), default=None)
                        last_before = max(filter(None, (last_before, before)), default=None)
            except psycopg.OperationalError as exc:
                raise TargetUnavailableError(f"data-stop check: database unavailable: {exc}") from exc
            except psycopg.Error as exc:
                # A wrong table or column in the runbook: no retry helps.
                raise TargetRejectedError(f"data-stop check of {input.schema_name}: {exc}") from exc
            return DataStop(switch_off_at=input.switch_off_at, checked_at=datetime.now(UTC), rows_after=rows,
                            last_row_at=last_after, last_row_before=last_before)
