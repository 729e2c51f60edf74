"""What the resume plan decided for each quarantined copy, done in PostgreSQL and checked there: a copy
dropped is gone, a copy purged holds no row its data action's rule selects, a copy kept stays quarantined.

Each step is idempotent: a retry drops nothing twice and deletes no row twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.copies_catalog import QUARANTINE_SCHEMA, Located, locate
from pausegate.connectors.postgres.quarantine import verify_relation
from pausegate.models.copies import Copy, SettledCopy
from pausegate.models.data_actions import DataAction, PurgeOlderThan, PurgeSubjects


def _rule(where: Located, action: DataAction) -> sql.Composed:
    """The rows of the copy the data action's rule selects."""
    if isinstance(action, PurgeSubjects):
        return sql.SQL("{} = ANY({})").format(sql.Identifier(action.subject_column), sql.Literal(list(action.subjects)))
    if isinstance(action, PurgeOlderThan):
        return sql.SQL("{} < {}").format(sql.Identifier(action.column), sql.Literal(action.cutoff))
    raise ValueError(f"data action {action.kind} deletes no rows")


async def _count(conn: AsyncConnection[Any], query: sql.Composed) -> int:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def drop_copy(conn: AsyncConnection[Any], copy: Copy) -> SettledCopy:
    """Drop the copy (views an insider built over it go with it); verified by looking it up again."""
    where = await locate(conn, copy)
    if where is not None:
        # only a copy in the quarantine is dropped: a name elsewhere may by now be someone else's table
        if where.schema == QUARANTINE_SCHEMA:
            await conn.execute(sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(where.word), where.ident))
        else:
            return SettledCopy(copy_id=copy.id, action="drop", verified=False,
                               note="not in the quarantine: nothing dropped")
    return SettledCopy(copy_id=copy.id, action="drop", verified=await locate(conn, copy) is None)


async def purge_copy(conn: AsyncConnection[Any], copy: Copy, action: DataAction) -> SettledCopy:
    """Delete the copy's rows that the data action's rule selects; verified by counting them again."""
    where = await locate(conn, copy)
    if where is None or where.schema != QUARANTINE_SCHEMA:
        return SettledCopy(copy_id=copy.id, action="purge", verified=False, note="not in the quarantine")
    rule = _rule(where, action)
    async with conn.transaction():
        cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(where.ident, rule))
        deleted = max(cur.rowcount, 0)
    left = await _count(conn, sql.SQL("SELECT count(*) FROM {} WHERE {}").format(where.ident, rule))
    return SettledCopy(copy_id=copy.id, action="purge", rows_deleted=deleted, verified=left == 0)


async def keep_copy(conn: AsyncConnection[Any], copy: Copy, break_glass: Sequence[str]) -> SettledCopy:
    """A copy kept quarantined: asked again whether it still is."""
    _residual, ok = await verify_relation(conn, copy, break_glass)
    return SettledCopy(copy_id=copy.id, action="keep_quarantined", verified=ok)
