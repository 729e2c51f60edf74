"""Reading what a resume plan's conditions depend on in PostgreSQL: who consented (and who wrote each
consent, as the database recorded it), and whether rows collected since the resume carry a data type the
plan dropped. Reads are read-only; the only writes are the consent table's provenance and a withdrawal
written back. Names are quoted identifiers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.conditions import ConsentRecord
from pausegate.models.runbook import ConsentSpec

MAX_CONSENT_ROWS = 5_000_000  # a consent table larger than any workforce is a mistake, not a workforce

# Who wrote a consent row and when, set by the database on every insert and update whatever the writer
# supplies: the login (session_user), the role the write ran as (current_user) and the server's clock.
PROVENANCE_BY = "granted_by"
PROVENANCE_AS = "granted_as"
PROVENANCE_AT = "granted_at"
PROVENANCE_FUNCTION = "pausegate_consent_provenance"
# BEFORE triggers fire in name order: the last name, so no other trigger can rewrite what this one set.
PROVENANCE_TRIGGER = "zzzz_pausegate_consent_provenance"
# When a collected row was last written, by the server's clock: the dropped-type check trusts this, not
# the time column the writer fills in (an agent can backdate that).
WRITTEN_AT = "pausegate_written_at"
WRITTEN_AT_FUNCTION = "pausegate_stamp_written_at"
WRITTEN_AT_TRIGGER = "zzzz_pausegate_written_at"


def provenance_statements(schema: str, table: str) -> list[sql.Composed]:
    """What gives a consent table its provenance: the columns, the function and the trigger that sets
    them on every insert and update (run in one transaction, by a role that owns the table)."""
    target = sql.Identifier(schema, table)
    return [
        *(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(target, sql.Identifier(c), sql.SQL(kind))
          for c, kind in ((PROVENANCE_BY, "text"), (PROVENANCE_AS, "text"), (PROVENANCE_AT, "timestamptz"))),
        sql.SQL("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER"
                " SET search_path = pg_catalog AS $$ BEGIN"
                " NEW.{by} := session_user; NEW.{as_} := current_user; NEW.{at} := clock_timestamp();"
                " RETURN NEW; END $$").format(
            fn=sql.Identifier(schema, PROVENANCE_FUNCTION), by=sql.Identifier(PROVENANCE_BY),
            as_=sql.Identifier(PROVENANCE_AS), at=sql.Identifier(PROVENANCE_AT)),
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(PROVENANCE_TRIGGER), target),
        sql.SQL("CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}()").format(
            sql.Identifier(PROVENANCE_TRIGGER), target, sql.Identifier(schema, PROVENANCE_FUNCTION)),
    ]


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

    @asynccontextmanager
    async def _connect_writing(self, what: str) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            conn = await AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
            )
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: cannot connect to PostgreSQL: {e}".strip()) from e
        try:
            async with conn:
                yield conn
        except psycopg.errors.UndefinedTable as e:
            raise TargetRejectedError(f"{what}: {e.diag.message_primary}") from e
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: {e}".strip()) from e
        except psycopg.Error as e:
            raise TargetRejectedError(f"{what}: PostgreSQL refused: {e}".strip()) from e

    async def _provenance_missing(self, conn: AsyncConnection[Any], schema: str, spec: ConsentSpec) -> list[str]:
        """What the consent table lacks for the database to record who wrote each row and when."""
        cols = await (await conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
            " AND attname = ANY(%s)",
            (sql.Identifier(schema, spec.table).as_string(conn), [PROVENANCE_BY, PROVENANCE_AS, PROVENANCE_AT]),
        )).fetchall()
        missing = sorted({PROVENANCE_BY, PROVENANCE_AS, PROVENANCE_AT} - {str(r[0]) for r in cols})
        # The trigger must be ours (the function the tool wrote), enabled, and fire on insert and update.
        trigger = await (await conn.execute(
            "SELECT t.tgenabled, p.proname, n.nspname, p.prosecdef, (t.tgtype & 1) = 1 AND (t.tgtype & 2) = 2"
            " AND (t.tgtype & 4) = 4 AND (t.tgtype & 16) = 16"
            " FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE t.tgrelid = %s::regclass AND t.tgname = %s",
            (sql.Identifier(schema, spec.table).as_string(conn), PROVENANCE_TRIGGER),
        )).fetchone()
        if trigger is None:
            missing.append(f"trigger {PROVENANCE_TRIGGER}")
        elif (trigger[0] == "D" or trigger[1] != PROVENANCE_FUNCTION or trigger[2] != schema or trigger[3]
              or not trigger[4]):
            missing.append(f"trigger {PROVENANCE_TRIGGER} enabled before each insert and update row, "
                           f"running {schema}.{PROVENANCE_FUNCTION} as the writer")
        return missing

    async def ensure_provenance(self, schema: str, spec: ConsentSpec) -> None:
        """Make the database record who wrote each consent row and when (columns set by a trigger from
        session_user, current_user and clock_timestamp(), overriding what the writer supplies); refuse,
        saying what is missing, when the table lacks it and this connection's role may not add it."""
        what = f"consent provenance on {schema}.{spec.table}"
        async with self._connect_writing(what) as conn:
            if not await self._provenance_missing(conn, schema, spec):
                return
            try:
                async with conn.transaction():
                    for statement in provenance_statements(schema, spec.table):
                        await conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege as e:
                missing = await self._provenance_missing(conn, schema, spec)
                raise TargetRejectedError(
                    f"consent table {schema}.{spec.table} lacks provenance (who granted consent and when, set "
                    f"by the database): missing {', '.join(missing)}, and this connection's role may not add "
                    f"it ({e.diag.message_primary}); its owner adds it, or the runbook's connection is given "
                    "the right") from e

    async def consent_rows(self, schema: str, spec: ConsentSpec) -> list[ConsentRecord]:
        """Every row of the consent table with the provenance the database recorded."""
        query = sql.SQL("SELECT {subject}, {granted}, {by}, {as_}, {at} FROM {table} LIMIT {limit}").format(
            subject=sql.Identifier(spec.subject_column), granted=sql.Identifier(spec.granted_column),
            by=sql.Identifier(PROVENANCE_BY), as_=sql.Identifier(PROVENANCE_AS), at=sql.Identifier(PROVENANCE_AT),
            table=sql.Identifier(schema, spec.table), limit=sql.Literal(MAX_CONSENT_ROWS + 1),
        )
        async with self._connect(f"reading consent from {schema}.{spec.table}") as conn:
            missing = await self._provenance_missing(conn, schema, spec)
            if missing:
                raise TargetRejectedError(f"consent table {schema}.{spec.table} lacks provenance (who granted "
                                          f"consent and when, set by the database): missing {', '.join(missing)}")
            rows = await (await conn.execute(query)).fetchall()
        if len(rows) > MAX_CONSENT_ROWS:
            raise TargetRejectedError(f"consent table {schema}.{spec.table} has more than {MAX_CONSENT_ROWS} rows")
        return [ConsentRecord(subject=str(r[0]), granted=r[1], granted_by=r[2], granted_as=r[3], granted_at=r[4])
                for r in rows if r[0] is not None]

    async def withdraw(self, schema: str, spec: ConsentSpec, subject: str) -> tuple[int, datetime]:
        """Write a withdrawn consent back to the consent table (granted false; the database records this
        connection's role and the time): the rows changed and the server's time of the write."""
        query = sql.SQL("UPDATE {table} SET {granted} = false WHERE {subject} = %s AND {granted} IS NOT FALSE"
                        ).format(table=sql.Identifier(schema, spec.table),
                                 granted=sql.Identifier(spec.granted_column),
                                 subject=sql.Identifier(spec.subject_column))
        async with self._connect_writing(f"writing a withdrawn consent to {schema}.{spec.table}") as conn:
            async with conn.transaction():
                changed = (await conn.execute(query, (subject,))).rowcount
                row = await (await conn.execute("SELECT clock_timestamp()")).fetchone()
        assert row is not None
        return max(changed, 0), row[0]

    async def _written_at_state(self, conn: AsyncConnection[Any], schema: str, table: str) -> str:
        """"stamped" when the server stamps the table's rows, "absent" when it never did, else what is wrong."""
        regclass = sql.Identifier(schema, table).as_string(conn)
        column = await (await conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s AND NOT attisdropped",
            (regclass, WRITTEN_AT))).fetchone()
        trigger = await (await conn.execute(
            "SELECT t.tgenabled, p.proname, n.nspname, p.prosecdef FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE t.tgrelid = %s::regclass AND t.tgname = %s",
            (regclass, WRITTEN_AT_TRIGGER))).fetchone()
        if column is None and trigger is None:
            return "absent"
        if (column is None or trigger is None or trigger[0] == "D" or trigger[1] != WRITTEN_AT_FUNCTION
                or trigger[2] != schema or trigger[3]):
            return (f"{schema}.{table}: the server's write time ({WRITTEN_AT}, set by trigger {WRITTEN_AT_TRIGGER}) "
                    "is missing, disabled or not the tool's")
        return "stamped"

    async def stamp_writes(self, schema: str, table: str) -> datetime:
        """Make the server stamp every row written to ``table`` with its own clock (a column set by a
        trigger, overriding what the writer supplies); the server's time once it does."""
        target = sql.Identifier(schema, table)
        async with self._connect_writing(f"stamping writes to {schema}.{table}") as conn:
            if await self._written_at_state(conn, schema, table) != "stamped":
                async with conn.transaction():
                    await conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} timestamptz").format(
                        target, sql.Identifier(WRITTEN_AT)))
                    await conn.execute(sql.SQL(
                        "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER"
                        " SET search_path = pg_catalog AS $$ BEGIN NEW.{at} := clock_timestamp(); RETURN NEW; END $$"
                    ).format(fn=sql.Identifier(schema, WRITTEN_AT_FUNCTION), at=sql.Identifier(WRITTEN_AT)))
                    await conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(WRITTEN_AT_TRIGGER), target))
                    await conn.execute(sql.SQL(
                        "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
                    ).format(sql.Identifier(WRITTEN_AT_TRIGGER), target, sql.Identifier(schema, WRITTEN_AT_FUNCTION)))
            row = await (await conn.execute("SELECT clock_timestamp()")).fetchone()
        assert row is not None
        return row[0]

    async def rows_carrying(self, schema: str, table: str, columns: list[str], collected_at: str,
                            since: datetime, written_since: datetime | None = None) -> int:
        """Rows collected at or after ``since`` with a value in any of ``columns``: by the time column the
        writer fills in, and, when ``written_since`` is given (the server's clock once it stamped the
        table's writes), by the server's time too: a backdated row is still found."""
        any_value = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns)
        async with self._connect(f"checking {schema}.{table} for dropped data types") as conn:
            state = await self._written_at_state(conn, schema, table)
            if written_since is not None and state != "stamped":
                # A check that cannot see the server's time must not pass on the writer's word.
                raise TargetRejectedError(state if state != "absent" else
                                          f"{schema}.{table}: the server's write time ({WRITTEN_AT}) is gone")
            when = sql.SQL("{at} >= %s").format(at=sql.Identifier(collected_at))
            params: tuple[datetime, ...] = (since,)
            if written_since is not None:
                when = sql.SQL("({at} >= %s OR {written} >= %s)").format(
                    at=sql.Identifier(collected_at), written=sql.Identifier(WRITTEN_AT))
                params = (since, written_since)
            query = sql.SQL("SELECT count(*) FROM {table} WHERE {when} AND ({any})").format(
                table=sql.Identifier(schema, table), when=when, any=any_value)
            row = await (await conn.execute(query, params)).fetchone()
        return int(row[0]) if row else 0
