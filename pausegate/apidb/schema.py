"""The API's shared database's schema, as numbered migrations applied once each, and the grants that
give the API's role only what it needs.

Migrations run under a transaction-level advisory lock, so replicas starting together apply each one
exactly once; a replica that finds the schema newer than it knows refuses to start rather than write
rows an older version would misread.

The log tables are append-only three times over: the API's role is granted INSERT and SELECT on them,
never UPDATE, DELETE or TRUNCATE; a trigger refuses those to every role but a superuser who disables
it; and what a superuser (or anyone with the owner's password) changes anyway breaks the hash chain
or the signed head, which ``pausegate.records`` checks.
"""

from __future__ import annotations

import psycopg
import structlog
from psycopg import sql

from pausegate.errors import ConfigError

log = structlog.get_logger(__name__)

# Any constant both sides agree on: the key of the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x7061_7573_6567_6174  # "pausegat"

MIGRATIONS: list[str] = [
    # 1: users, chained logs, rate buckets, update slots
    """
    CREATE TABLE api_users (
        name text PRIMARY KEY,
        roles text[] NOT NULL,
        token_sha256 text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL,
        signature text NOT NULL
    );
    CREATE TABLE api_log_lines (
        log text NOT NULL,
        seq bigint NOT NULL,
        line text NOT NULL,
        PRIMARY KEY (log, seq)
    );
    CREATE TABLE api_log_heads (
        log text PRIMARY KEY,
        lines bigint,
        last text,
        breaks jsonb NOT NULL DEFAULT '[]',
        key_sha256 text,
        signature text
    );
    CREATE TABLE api_rate_buckets (
        actor text PRIMARY KEY,
        tokens double precision NOT NULL,
        granted boolean NOT NULL,
        at timestamptz NOT NULL
    );
    CREATE TABLE api_update_slots (
        pause text NOT NULL,
        slot integer NOT NULL,
        lease uuid NOT NULL UNIQUE,
        replica text NOT NULL,
        actor text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (pause, slot)
    );
    CREATE FUNCTION pausegate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'api_log_lines is append-only: % refused', TG_OP;
    END $$;
    CREATE TRIGGER api_log_lines_append_only BEFORE UPDATE OR DELETE ON api_log_lines
        FOR EACH ROW EXECUTE FUNCTION pausegate_append_only();
    CREATE TRIGGER api_log_lines_no_truncate BEFORE TRUNCATE ON api_log_lines
        FOR EACH STATEMENT EXECUTE FUNCTION pausegate_append_only();
    REVOKE ALL ON api_users, api_log_lines, api_log_heads, api_rate_buckets, api_update_slots FROM PUBLIC;
    """,
]

# What the API's role may do on each table; nothing else.
API_GRANTS: dict[str, tuple[str, ...]] = {
    "pausegate_schema": ("SELECT",),
    "api_users": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "api_log_lines": ("SELECT", "INSERT"),
    "api_log_heads": ("SELECT", "INSERT", "UPDATE"),
    "api_rate_buckets": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "api_update_slots": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}
APPEND_ONLY = ("api_log_lines",)


class SchemaTooNew(ConfigError):
    """The database was migrated by a newer pausegate than this one."""


def migrate(conn: psycopg.Connection[object], *, api_role: str | None = None) -> int:
    """Apply the migrations ``conn``'s database lacks, then the API role's grants; returns the version.

    ``api_role``: the role the replicas connect as, when it is not the one migrating. It is granted
    exactly ``API_GRANTS``; the log tables' UPDATE, DELETE and TRUNCATE are revoked from it (and from
    the migrating role itself when they are the same, so a mistake cannot rewrite a log either).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        row = conn.execute("SELECT to_regclass('pausegate_schema') IS NOT NULL").fetchone()
        current = 0
        if row and row[0]:  # type: ignore[index]
            row = conn.execute("SELECT coalesce(max(version), 0) FROM pausegate_schema").fetchone()
            current = int(row[0]) if row else 0  # type: ignore[index]
        if current == len(MIGRATIONS) and api_role is None:
            # Up to date: a replica without the owner's credentials has nothing to change (and could not).
            return current
        conn.execute(
            "CREATE TABLE IF NOT EXISTS pausegate_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("REVOKE ALL ON pausegate_schema FROM PUBLIC")
        if current > len(MIGRATIONS):
            raise SchemaTooNew(f"the state database is at schema version {current}; this pausegate knows "
                               f"{len(MIGRATIONS)}: upgrade pausegate")
        for version in range(current + 1, len(MIGRATIONS) + 1):
            conn.execute(MIGRATIONS[version - 1].encode())
            conn.execute("INSERT INTO pausegate_schema (version) VALUES (%s)", (version,))
            log.info("state_schema_migrated", version=version)
        me = conn.execute("SELECT current_user").fetchone()
        roles = {str(me[0])} if me else set()  # type: ignore[index]
        if api_role:
            roles.add(api_role)
            for table, privileges in API_GRANTS.items():
                conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(", ").join(map(sql.SQL, privileges)), sql.Identifier(table), sql.Identifier(api_role)))
        for table in APPEND_ONLY:
            for role in sorted(roles):
                conn.execute(sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                    sql.Identifier(table), sql.Identifier(role)))
    return len(MIGRATIONS)
