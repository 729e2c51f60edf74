"""A break-glass grant in PostgreSQL: a login role of its own, SELECT on what was asked and nothing
it can pass on, every statement logged; closed by turning login off, revoking, ending its sessions,
and asking the database whether any of it is left.

Why a role per grant: two grants of one person end independently (the first to end takes nothing
from the second), and ending one ends exactly its sessions. Why not ``VALID UNTIL``: it only
applies to password checks, and ends no session already open.

Statements are logged with ``log_statement = 'all'`` set on the role (a superuser-only setting, so
the holder cannot turn it off in a session); where the tool's role may not set it, pgaudit's object
audit (the cluster's ``pgaudit.role`` is given the same SELECT, so every read of those objects is
logged); with neither, the grant is refused and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.copies_catalog import QUARANTINE_SCHEMA
from pausegate.errors import TargetRejectedError
from pausegate.models.break_glass import GrantOpened, GrantRevoked, GrantTarget, TableAccess

LOG_STATEMENT = "log_statement"
PGAUDIT = "pgaudit"
TERMINATE_WAIT_MS = 5000


class GrantRefused(TargetRejectedError):
    """The database side cannot give this grant as the runbook requires it (no statement logging)."""


def _relation(schema: str, table: TableAccess) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table.table))


def quarantined_relation(qualified: str) -> sql.Identifier:
    """A copy's place in the quarantine schema (``Copy.quarantined_as``): the schema is the quarantine's,
    the rest (whatever the copy was called) is one name."""
    schema, _, name = qualified.partition(".")
    if schema != QUARANTINE_SCHEMA or not name:
        raise GrantRefused(f"break-glass refused: a copy is not in the quarantine schema ({QUARANTINE_SCHEMA})")
    return sql.Identifier(schema, name)


def _select(target: GrantTarget, table: TableAccess, grantee: str) -> sql.Composed:
    # no WITH GRANT OPTION: the holder can pass nothing on
    columns = sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, table.columns))) if table.columns \
        else sql.SQL("")
    return sql.SQL("GRANT SELECT {} ON {} TO {}").format(columns, _relation(target.schema_name, table),
                                                         sql.Identifier(grantee))


async def _exists(conn: AsyncConnection[Any], role: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return await cur.fetchone() is not None


async def _log_statements(conn: AsyncConnection[Any], role: str) -> bool:
    """``log_statement = 'all'`` for the role, if the tool's role may set it."""
    try:
        async with conn.transaction():
            await conn.execute(sql.SQL("ALTER ROLE {} SET log_statement = 'all'").format(sql.Identifier(role)))
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


async def _audit_role(conn: AsyncConnection[Any]) -> str | None:
    """pgaudit's object-audit role: set only where the library is loaded (its settings exist only then)."""
    cur = await conn.execute("SELECT current_setting('pgaudit.role', true)")
    row = await cur.fetchone()
    return str(row[0]) if row is not None and row[0] else None


async def open_grant(conn: AsyncConnection[Any], target: GrantTarget,
                     quarantined: Sequence[str] = ()) -> GrantOpened:
    """Create the grant's role (once: a retry finds it and completes what is missing) with SELECT on the
    asked tables or columns, and on the quarantined copies named (``schema.name``: USAGE on the quarantine
    schema, SELECT on each copy only); raise ``GrantRefused`` when its statements cannot be logged."""
    role = sql.Identifier(target.role)
    copies = [quarantined_relation(q) for q in quarantined]
    async with conn.transaction():
        if not await _exists(conn, target.role):
            password = sql.SQL(" PASSWORD {}").format(sql.Literal(target.scram_verifier)) \
                if target.scram_verifier else sql.SQL("")
            await conn.execute(sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
                "{}").format(role, password))
    logging = LOG_STATEMENT if await _log_statements(conn, target.role) else None
    audit = None if logging is not None else await _audit_role(conn)
    if logging is None and audit is None:
        await conn.execute(sql.SQL("DROP ROLE {}").format(role))  # it was given nothing yet
        raise GrantRefused(
            "break-glass refused: the tool's role may not set log_statement for the grant's role "
            "(a superuser setting) and pgaudit's object audit is not configured (pgaudit.role): "
            "the grant's statements could not be recorded")
    async with conn.transaction():
        if audit is not None:
            for table in target.tables:
                await conn.execute(_select(target, table, audit))
            for copy in copies:
                await conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(copy, sql.Identifier(audit)))
            logging = PGAUDIT
        if target.tables:
            await conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(target.schema_name), role))
        for table in target.tables:
            await conn.execute(_select(target, table, target.role))
        if copies:
            await conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(QUARANTINE_SCHEMA),
                                                                                role))
        for copy in copies:
            await conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(copy, role))
    return GrantOpened(grant_id=target.grant_id, logging=logging)


async def close_grant(conn: AsyncConnection[Any], target: GrantTarget,
                      quarantined: Sequence[str] = ()) -> GrantRevoked:
    """Login off first (no new session), privileges revoked, every session of the role ended, then
    verified by the database. Idempotent: a retry after a crash finds less to do and verifies again."""
    role = sql.Identifier(target.role)
    if not await _exists(conn, target.role):
        return GrantRevoked(sessions_terminated=0, verified=True)
    await conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
    terminated = await _terminate(conn, target.role)
    async with conn.transaction():
        for table in target.tables:
            # revoking the table's privilege revokes its column privileges too
            await conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(
                _relation(target.schema_name, table), role))
        await conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
            sql.Identifier(target.schema_name), role))
        for qualified in quarantined:
            if await _exists_relation(conn, qualified):  # a copy the plan dropped meanwhile has nothing to revoke
                await conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(quarantined_relation(qualified), role))
        if quarantined and await _exists_schema(conn, QUARANTINE_SCHEMA):
            await conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                sql.Identifier(QUARANTINE_SCHEMA), role))
    terminated += await _terminate(conn, target.role)  # a session that began before login went off
    problems = await verify_closed(conn, target, quarantined)
    return GrantRevoked(sessions_terminated=terminated, verified=not problems, problems=problems)


async def _terminate(conn: AsyncConnection[Any], role: str) -> int:
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) FROM pg_stat_activity "
        "WHERE usename = %s AND pid <> pg_backend_pid()", (TERMINATE_WAIT_MS, role))
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def verify_closed(conn: AsyncConnection[Any], target: GrantTarget,
                        quarantined: Sequence[str] = ()) -> list[str]:
    """What is left of the grant, as the database says (empty: nothing)."""
    problems: list[str] = []
    cur = await conn.execute(
        "SELECT r.rolcanlogin, (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname), "
        "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) FROM pg_roles r WHERE r.rolname = %s",
        (target.role,))
    row = await cur.fetchone()
    if row is None:
        return []
    if row[0]:
        problems.append("the role can still log in")
    if row[1]:
        problems.append(f"{row[1]} sessions still open")
    if row[2]:
        problems.append(f"the role is a member of {row[2]} roles")
    for table in target.tables:
        name = f"{target.schema_name}.{table.table}"
        cur = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND (has_table_privilege(%s, to_regclass(%s), 'SELECT') "
            "OR has_any_column_privilege(%s, to_regclass(%s), 'SELECT'))",
            (_quoted(target.schema_name, table.table), target.role, _quoted(target.schema_name, table.table),
             target.role, _quoted(target.schema_name, table.table)))
        readable = await cur.fetchone()
        if readable is not None and readable[0]:
            problems.append(f"the role can still read {name}")
    for qualified in quarantined:
        relation = quarantined_relation(qualified).as_string(conn)
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL AND (has_table_privilege(%s, to_regclass(%s), "
                                 "'SELECT') OR has_any_column_privilege(%s, to_regclass(%s), 'SELECT'))",
                                 (relation, target.role, relation, target.role, relation))
        readable = await cur.fetchone()
        if readable is not None and readable[0]:
            problems.append("the role can still read a quarantined copy")
    return problems


async def _exists_relation(conn: AsyncConnection[Any], qualified: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                             (quarantined_relation(qualified).as_string(conn),))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _exists_schema(conn: AsyncConnection[Any], schema: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    return await cur.fetchone() is not None


def _quoted(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'  # both are plain lower-case identifiers (the runbook's and the request's pattern)
