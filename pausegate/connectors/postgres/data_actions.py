"""Data actions in PostgreSQL: purge, null, drop and pseudonymise, each applied exactly once, then verified.

Exactly once: an action runs in one transaction together with the insert of its row in a ledger
(``pausegate.data_actions`` in the dataset's own database, keyed by pause and action digest). A retry
after the commit finds the row and returns the recorded count without touching the data; a crash
before the commit rolls the action back with its ledger row; two attempts at once are serialised by the
ledger row itself: each first inserts its row, and the primary key makes the second wait for the first's
transaction and then find the row committed (or, if the first rolled back, take its place).

No lock here is one a stranger can take: an advisory lock's key is free for any role that can connect
(revoking access leaves CONNECT), so holding it would stall every apply and verification. The only
locks are on the ledger's rows and on the dataset's tables, and the ledger lives in a schema the
administrative role owns and grants to nobody; a schema or table of that name owned by another role,
or a schema others may use, is refused rather than trusted.

What runs beside an action on a target is refused the same way: a trigger or a rule on the table could
copy the values being destroyed elsewhere (or, a rule, do something else instead), and row security
that applies to the administrative role would let the action, and its verification, see only the rows
its policies show.

One statement per action, not batches: batches would each need a commit, and a pseudonym applied twice
is a different pseudonym, so a crash between batches would need per-row bookkeeping to stay exactly
once. A single UPDATE or DELETE holds row locks only on the rows it changes; a concurrent INSERT takes
no lock it conflicts with, so writers are not held up (``bench/bench_data_actions.py`` measures it).
Its cost is one long transaction and the table's dead row versions until VACUUM: like any UPDATE or
DROP COLUMN, the action removes values logically; the old bytes stay on disk until the table is
vacuumed or rewritten.

Pseudonyms are HMAC-SHA256 (RFC 2104) computed by the server with its built-in ``sha256()``: the key is
turned into its inner and outer pads here and bound as parameters, never formatted into SQL, and the
server is told not to log bound parameters for that transaction (``log_parameter_max_length = 0``), so
the key reaches neither the statement log nor the workflow history. auto_explain and pgaudit log
parameters by settings of their own: a pseudonymisation is refused while, in its own transaction, either
would log them. pgcrypto is not needed (the embedded server does not ship it).

Every identifier reaches SQL through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection, sql

from pausegate.config import PseudonymKey
from pausegate.connectors.postgres.data_action_targets import (
    PARAMETER_LOGGERS_Q,
    TargetTable,
    column_problems,
    load_table,
    parameter_loggers,
)
from pausegate.errors import ConfigError, TargetRejectedError, TargetUnavailableError
from pausegate.models.data_actions import (
    PSEUDONYM_HEX_LENGTH,
    DataAction,
    DataActionResult,
    DataActionsCheck,
    DropColumn,
    NullColumn,
    PseudonymiseColumn,
    PurgeOlderThan,
    PurgeSubjects,
    action_digest,
)
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

LEDGER_SCHEMA = "pausegate"
LEDGER_TABLE = "data_actions"
LEDGER = sql.Identifier(LEDGER_SCHEMA, LEDGER_TABLE)

HMAC_BLOCK = 64  # SHA-256's block size, which RFC 2104 pads the key to

CREATE_LEDGER = sql.SQL(
    """
    CREATE SCHEMA IF NOT EXISTS {schema};
    CREATE TABLE IF NOT EXISTS {ledger} (
      pause_key      text        NOT NULL,
      action_digest  text        NOT NULL,
      action_index   integer     NOT NULL,
      kind           text        NOT NULL,
      target         text        NOT NULL,
      rows_affected  bigint      NOT NULL,
      applied_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (pause_key, action_digest)
    );
    """
).format(schema=sql.Identifier(LEDGER_SCHEMA), ledger=LEDGER)

LEDGER_CREATE_ATTEMPTS = 3
# Who we are, who owns the ledger's schema and table, and which other roles (PUBLIC as "public") the
# schema grants anything to; NULLs where they do not exist yet.
LEDGER_STATE_Q = """
SELECT current_user::text,
       n.nspowner::regrole::text,
       ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'public' ELSE a.grantee::regrole::text END
             FROM aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner ORDER BY 1),
       c.relowner::regrole::text
FROM (SELECT 1) one
LEFT JOIN pg_namespace n ON n.nspname = %(schema)s
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = %(table)s
"""

PRESENT_Q = """
SELECT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

ROW_SECURITY_BY_NAME_Q = """
SELECT row_security_active(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104's inner and outer key pads for SHA-256: HMAC(k, m) = H(opad || H(ipad || m))."""
    if len(key) > HMAC_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _where(index: int, action: DataAction) -> str:
    return f"data_actions[{index}] ({action.describe()})"


class PostgresDataActions:
    """Data actions on PostgreSQL 16+ through the dataset's administrative connection (``dsn``).

    ``keys``: the deployment's pseudonym keys by key id (only their ids ever leave this object).
    """

    def __init__(
        self,
        dsn: str,
        *,
        keys: Mapping[str, PseudonymKey] | None = None,
        lock_timeout_ms: int = 5_000,
        connect_timeout_s: int = 10,
    ) -> None:
        self._dsn = dsn
        self._keys = dict(keys or {})
        self._lock_timeout_ms = lock_timeout_ms
        self._connect_timeout_s = connect_timeout_s

    # -- connection and error mapping -------------------------------------------------------------

    @asynccontextmanager
    async def _connect(self, what: str) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            conn = await AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s)
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: cannot connect to PostgreSQL: {e}".strip()) from e
        try:
            async with conn:
                await conn.execute(
                    sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{self._lock_timeout_ms}ms"))
                )
                # A timestamp column without a time zone compares with the plan's cutoff in UTC.
                await conn.execute("SET TimeZone = 'UTC'")
                # If this process dies mid-statement, the server notices within a second and rolls the
                # action back, rather than holding its locks until the statement ends by itself.
                await conn.execute("SET client_connection_check_interval = '1s'")
                yield conn
        except psycopg.errors.InsufficientPrivilege as e:
            raise TargetRejectedError(
                f"{what}: the administrative connection lacks a privilege it needs: {e.diag.message_primary}"
            ) from e
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: {e}".strip()) from e
        except psycopg.Error as e:
            raise TargetRejectedError(f"{what}: PostgreSQL refused: {e.diag.message_primary or e}".strip()) from e

    async def _ensure_ledger(self, conn: AsyncConnection[Any]) -> None:
        """The ledger exists, in a schema this role owns and grants to nobody (so nobody else can lock it)."""
        for _ in range(LEDGER_CREATE_ATTEMPTS):
            cur = await conn.execute(LEDGER_STATE_Q, {"schema": LEDGER_SCHEMA, "table": LEDGER_TABLE})
            row = await cur.fetchone()
            assert row is not None
            me, schema_owner, shared_with, table_owner = row
            if schema_owner is not None and schema_owner != me:
                raise TargetRejectedError(
                    f"schema {LEDGER_SCHEMA} belongs to role {schema_owner}, not to {me}: the data-action ledger "
                    "must live in a schema only the administrative role controls"
                )
            if shared_with:
                raise TargetRejectedError(
                    f"schema {LEDGER_SCHEMA} grants privileges to {', '.join(shared_with)}: the data-action ledger "
                    "must live in a schema nobody but the administrative role may use"
                )
            if table_owner is not None:
                if table_owner != me:
                    raise TargetRejectedError(
                        f"table {LEDGER_SCHEMA}.{LEDGER_TABLE} belongs to role {table_owner}, not to {me}"
                    )
                return
            try:
                async with conn.transaction():
                    await conn.execute(CREATE_LEDGER)
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject,
                    psycopg.errors.DuplicateSchema, psycopg.errors.DuplicateTable):
                # Another attempt created it at the same moment (CREATE ... IF NOT EXISTS can still
                # collide in the catalogs): look again rather than serialise behind a shared lock.
                continue
        raise TargetUnavailableError(f"the data-action ledger {LEDGER_SCHEMA}.{LEDGER_TABLE} could not be created")

    # -- apply -------------------------------------------------------------------------------------

    async def apply(self, pause_key: str, spec: DatasetSpec, index: int, action: DataAction) -> DataActionResult:
        """Apply ``action`` once for this pause; a repeat returns what the first application recorded."""
        digest = action_digest(action)
        what = f"data action {index} on {spec.name}"
        if action.dataset != spec.name:
            raise TargetRejectedError(f"{_where(index, action)}: names dataset {action.dataset!r}, not {spec.name!r}")
        async with self._connect(what) as conn:
            await self._ensure_ledger(conn)
            async with conn.transaction():
                # The row is claimed before the action runs: a second attempt waits on it here and then
                # finds it committed; a rolled-back first attempt leaves it free to claim.
                cur = await conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (pause_key, action_digest, action_index, kind, target, rows_affected) "
                        "VALUES (%s, %s, %s, %s, %s, 0) ON CONFLICT (pause_key, action_digest) DO NOTHING RETURNING 1"
                    ).format(LEDGER),
                    (pause_key, digest, index, action.kind, action.qualified),
                )
                if await cur.fetchone() is None:
                    recorded = await self._recorded(conn, pause_key, digest)
                    if recorded is None:  # pragma: no cover - the conflict was with a committed row
                        raise TargetUnavailableError(f"{what}: its ledger row vanished while it was read")
                    rows, applied_at = recorded
                    log.info("data_action.already_applied", index=index, kind=action.kind, digest=digest)
                    return _result(index, action, digest, rows, applied_now=False, applied_at=applied_at)
                problems = await self._problems(conn, spec, [(index, action)])
                if problems:
                    raise TargetRejectedError("; ".join(problems))
                rows = await self._run(conn, spec, action)
                cur = await conn.execute(
                    sql.SQL(
                        "UPDATE {} SET rows_affected = %s, applied_at = clock_timestamp() "
                        "WHERE pause_key = %s AND action_digest = %s RETURNING applied_at"
                    ).format(LEDGER),
                    (rows, pause_key, digest),
                )
                row = await cur.fetchone()
                assert row is not None
                applied_at = row[0]
        log.info("data_action.applied", index=index, kind=action.kind, target=action.qualified, rows=rows)
        return _result(index, action, digest, rows, applied_now=True, applied_at=applied_at)

    async def _recorded(self, conn: AsyncConnection[Any], pause_key: str, digest: str) -> tuple[int, datetime] | None:
        cur = await conn.execute(
            sql.SQL("SELECT rows_affected, applied_at FROM {} WHERE pause_key = %s AND action_digest = %s").format(
                LEDGER
            ),
            (pause_key, digest),
        )
        row = await cur.fetchone()
        return (int(row[0]), row[1]) if row else None

    async def _run(self, conn: AsyncConnection[Any], spec: DatasetSpec, action: DataAction) -> int:
        """The action's statement(s), inside the caller's transaction; the number of rows (or values) it removed."""
        table = sql.Identifier(spec.schema_name, action.table)
        if isinstance(action, PurgeOlderThan):
            cur = await conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} < %s").format(table, sql.Identifier(action.column)), (action.cutoff,)
            )
            return cur.rowcount
        if isinstance(action, PurgeSubjects):
            cur = await conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(table, sql.Identifier(action.subject_column)),
                (list(action.subjects),),
            )
            return cur.rowcount
        column = sql.Identifier(action.column)
        if isinstance(action, NullColumn):
            cur = await conn.execute(
                sql.SQL("UPDATE {} SET {} = NULL WHERE {} IS NOT NULL").format(table, column, column)
            )
            return cur.rowcount
        if isinstance(action, DropColumn):
            # Locked first so the count is of exactly the values the drop removes.
            await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
            cur = await conn.execute(sql.SQL("SELECT count({}) FROM {}").format(column, table))
            row = await cur.fetchone()
            await conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(table, column))
            return int(row[0]) if row else 0
        if isinstance(action, PseudonymiseColumn):
            inner, outer = hmac_pads(self._key(action.key_id))
            # The pads are the key in another form: keep bound parameters out of the server's log.
            await conn.execute("SET LOCAL log_parameter_max_length = 0")
            await conn.execute("SET LOCAL log_parameter_max_length_on_error = 0")
            cur = await conn.execute(
                sql.SQL(
                    "UPDATE {table} SET {col} = encode(sha256(%(outer)s::bytea || "
                    "sha256(%(inner)s::bytea || convert_to({col}, 'UTF8'))), 'hex') WHERE {col} IS NOT NULL"
                ).format(table=table, col=column),
                {"inner": inner, "outer": outer},
            )
            return cur.rowcount
        raise TargetRejectedError(f"unknown data action kind {action.kind!r}")  # pragma: no cover

    def _key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id].key_bytes()
        except KeyError:
            raise ConfigError(f"pseudonym key {key_id!r} is not configured") from None

    # -- check at proposal -------------------------------------------------------------------------

    async def check(self, spec: DatasetSpec, actions: Sequence[DataAction]) -> list[str]:
        """Why the actions could not be applied to this dataset as it is now (empty when they could).

        Actions of other datasets are skipped, so callers may pass the plan's whole list and every
        problem names the action by its position in the plan."""
        mine = [(i, a) for i, a in enumerate(actions) if a.dataset == spec.name]
        if not mine:
            return []
        async with self._connect(f"check data actions on {spec.name}") as conn:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return await self._problems(conn, spec, mine)

    async def _problems(
        self, conn: AsyncConnection[Any], spec: DatasetSpec, actions: Sequence[tuple[int, DataAction]]
    ) -> list[str]:
        tables: dict[str, TargetTable | None] = {}
        problems: list[str] = []
        dropped: set[tuple[str, str]] = set()
        now_row = await (await conn.execute("SELECT now()")).fetchone()
        assert now_row is not None
        now: datetime = now_row[0]
        loggers: list[str] = []
        if any(isinstance(a, PseudonymiseColumn) for _, a in actions):
            # Read in the transaction that would run the action: the pads travel as bound parameters.
            settings = await (await conn.execute(PARAMETER_LOGGERS_Q)).fetchone()
            assert settings is not None
            loggers = parameter_loggers(*settings)
        for index, action in actions:
            where = _where(index, action)
            if action.dataset != spec.name:
                problems.append(f"{where}: names dataset {action.dataset!r}, not {spec.name!r}")
                continue
            if spec.tables and action.table not in spec.tables:
                problems.append(
                    f"{where}: table {action.table!r} is not one of dataset {spec.name}'s tables "
                    f"({', '.join(spec.tables)})"
                )
                continue
            if action.table not in tables:
                tables[action.table] = await load_table(conn, spec.schema_name, action.table)
            table = tables[action.table]
            qualified = f"{spec.schema_name}.{action.table}"
            if table is None:
                problems.append(f"{where}: table {qualified} does not exist")
                continue
            if table.kind not in ("r", "p"):
                problems.append(f"{where}: {qualified} is not a table (a view holds no rows of its own)")
                continue
            column_name = action.target_column
            assert column_name is not None
            if (action.table, column_name) in dropped:
                problems.append(f"{where}: column {qualified}.{column_name} is dropped by an earlier action")
                continue
            column = table.columns.get(column_name)
            if column is None:
                problems.append(f"{where}: column {column_name!r} does not exist in {qualified}")
                continue
            found = column_problems(action, qualified, column, table, now, self._keys)
            if isinstance(action, PseudonymiseColumn):
                found += [f"{why}: the pseudonym key would reach the server's log; set "
                          "auto_explain.log_parameter_max_length = 0 and pgaudit.log_parameter = off for "
                          "the administrative role" for why in loggers]
            problems.extend(f"{where}: {p}" for p in found)
            if isinstance(action, DropColumn):
                dropped.add((action.table, column_name))
        return problems

    # -- verify ------------------------------------------------------------------------------------

    async def verify(self, pause_key: str, spec: DatasetSpec, actions: Sequence[DataAction]) -> DataActionsCheck:
        """Whether every action of this dataset was applied for the pause and its effect holds now.

        Proves, from the database: the ledger holds a row for each action (so it was committed, once);
        a nulled column holds no non-null value; a dropped column is absent; no row is older than a
        purge's cutoff; no row names a purged subject; every value of a pseudonymised column is a
        64-hex-digit HMAC (the originals are gone, so equality with them cannot be re-checked: the
        rewrite replaced every non-null value in the transaction the ledger row records, and an HMAC
        equals its input only if the input was itself 64 hex digits and a fixed point, a 2^-256 event).
        """
        mine = [(i, a) for i, a in enumerate(actions) if a.dataset == spec.name]
        problems: list[str] = []
        results: list[DataActionResult] = []
        if not mine:
            return DataActionsCheck(ok=True)
        async with self._connect(f"verify data actions on {spec.name}") as conn:
            await self._ensure_ledger(conn)
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                dropped = {(a.table, a.column) for _, a in mine if isinstance(a, DropColumn)}
                for index, action in mine:
                    where = _where(index, action)
                    digest = action_digest(action)
                    recorded = await self._recorded(conn, pause_key, digest)
                    if recorded is None:
                        problems.append(f"{where}: not applied (no ledger record for this pause)")
                    else:
                        rows, applied_at = recorded
                        results.append(_result(index, action, digest, rows, applied_now=False, applied_at=applied_at))
                    problem = await _effect_problem(conn, spec, action, dropped)
                    if problem:
                        problems.append(f"{where}: {problem}")
        return DataActionsCheck(ok=not problems, problems=problems, results=results)


def _result(
    index: int, action: DataAction, digest: str, rows: int, *, applied_now: bool, applied_at: datetime | None
) -> DataActionResult:
    return DataActionResult(
        index=index,
        kind=action.kind,
        dataset=action.dataset,
        table=action.table,
        column=action.target_column,
        rows_affected=rows,
        applied_now=applied_now,
        digest=digest,
        applied_at=applied_at,
    )


async def _count(conn: AsyncConnection[Any], query: sql.Composed, params: Sequence[Any] = ()) -> int:
    row = await (await conn.execute(query, params)).fetchone()
    return int(row[0]) if row else 0


async def _effect_problem(
    conn: AsyncConnection[Any], spec: DatasetSpec, action: DataAction, dropped: set[tuple[str, str]]
) -> str | None:
    """What in the database contradicts the action's effect now, or None."""
    column_name = action.target_column
    assert column_name is not None
    row = await (await conn.execute(PRESENT_Q, (column_name, spec.schema_name, action.table))).fetchone()
    qualified = f"{spec.schema_name}.{action.table}"
    if row is None:
        # No table, no row: a purge or a column's values cannot survive it.
        return None
    present = bool(row[0])
    table = sql.Identifier(spec.schema_name, action.table)
    hidden = await (await conn.execute(ROW_SECURITY_BY_NAME_Q, (spec.schema_name, action.table))).fetchone()
    if hidden and hidden[0] and not isinstance(action, DropColumn):
        return f"row security applies to {qualified} for the administrative role: its rows cannot all be counted"
    if isinstance(action, DropColumn):
        return f"column {qualified}.{column_name} still exists" if present else None
    if not present:
        if (action.table, column_name) in dropped:
            return None  # dropped by a later action of the plan: nothing of it is left
        return f"column {qualified}.{column_name} no longer exists, and no action of the plan drops it"
    column = sql.Identifier(column_name)
    if isinstance(action, NullColumn):
        left = await _count(conn, sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(table, column))
        return f"{left} non-null values left in {qualified}.{column_name}" if left else None
    if isinstance(action, PurgeOlderThan):
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(table, column)
        left = await _count(conn, query, (action.cutoff,))
        return f"{left} rows of {qualified} older than {action.cutoff.isoformat()} left" if left else None
    if isinstance(action, PurgeSubjects):
        left = await _count(
            conn, sql.SQL("SELECT count(*) FROM {} WHERE {} = ANY(%s)").format(table, column), (list(action.subjects),)
        )
        return f"{left} rows of {qualified} about purged subjects left" if left else None
    if isinstance(action, PseudonymiseColumn):
        left = await _count(
            conn,
            sql.SQL(
                "SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND (length({c}) <> %s OR {c} !~ '^[0-9a-f]+$')"
            ).format(t=table, c=column),
            (PSEUDONYM_HEX_LENGTH,),
        )
        return f"{left} values of {qualified}.{column_name} are not pseudonyms" if left else None
    return None  # pragma: no cover
