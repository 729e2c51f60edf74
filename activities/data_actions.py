"""Data actions of a resume plan (placeholder of the shared contract: only ``null_column`` is carried
out here; the full module replaces this one)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql
from temporalio import activity

from activities.heartbeat import running
from pausegate.errors import TargetRejectedError
from pausegate.models.data_actions import (
    ApplyDataActionInput,
    CheckDataActionsInput,
    DataActionResult,
    DataActionsCheck,
    NullColumn,
    VerifyDataActionsInput,
)
from pausegate.models.digests import canonical_json, sha256_hex


class DataActionActivities:
    def __init__(self, dsn_of: Callable[[str], str]) -> None:
        self._dsn_of = dsn_of

    @activity.defn(name="apply_data_action")
    async def apply_data_action(self, input: ApplyDataActionInput) -> DataActionResult:
        async with running():
            a = input.action
            if not isinstance(a, NullColumn):
                raise TargetRejectedError(f"data action {a.kind} is not available in this build")
            query = sql.SQL("UPDATE {t} SET {c} = NULL WHERE {c} IS NOT NULL").format(
                t=sql.Identifier(input.dataset.schema_name, a.table), c=sql.Identifier(a.column))
            async with await psycopg.AsyncConnection.connect(self._dsn_of(input.dataset.connection),
                                                             autocommit=True) as conn:
                rows = (await conn.execute(query)).rowcount
            return DataActionResult(index=input.index, kind=a.kind, dataset=a.dataset, table=a.table,
                                    column=a.column, rows_affected=max(rows, 0), applied_now=rows > 0,
                                    digest=sha256_hex(canonical_json(a.model_dump(mode="json"))))

    @activity.defn(name="verify_data_actions")
    async def verify_data_actions(self, input: VerifyDataActionsInput) -> DataActionsCheck:
        async with running():
            problems: list[str] = []
            async with await psycopg.AsyncConnection.connect(self._dsn_of(input.dataset.connection),
                                                             autocommit=True) as conn:
                for a in input.actions:
                    if not isinstance(a, NullColumn):
                        continue
                    query = sql.SQL("SELECT count(*) FROM {t} WHERE {c} IS NOT NULL").format(
                        t=sql.Identifier(input.dataset.schema_name, a.table), c=sql.Identifier(a.column))
                    row = await (await conn.execute(query)).fetchone()
                    if row and row[0]:
                        problems.append(f"{a.dataset}.{a.table}.{a.column}: {row[0]} rows hold values again")
            return DataActionsCheck(ok=not problems, problems=problems)

    @activity.defn(name="check_data_actions")
    async def check_data_actions(self, input: CheckDataActionsInput) -> list[str]:
        async with running():
            problems: list[str] = []
            async with await psycopg.AsyncConnection.connect(self._dsn_of(input.dataset.connection),
                                                             autocommit=True) as conn:
                for i, a in enumerate(input.actions):
                    if not isinstance(a, NullColumn):
                        problems.append(f"data_actions[{i}]: {a.kind} is not available in this build")
                        continue
                    row = await (await conn.execute(
                        "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
                        " AND column_name = %s", (input.dataset.schema_name, a.table, a.column))).fetchone()
                    if row is None:
                        problems.append(f"data_actions[{i}]: no column {a.table}.{a.column} in "
                                        f"{input.dataset.schema_name}")
            return problems
