"""The embedded stack's API database (``pausegate.apidb``): ``pausegate_state`` in the embedded PostgreSQL,
apart from the program's data, owned by a role of its own and reached by the API as another.

- ``pausegate_state_owner`` owns the schema; migrations run as it (``owner_dsn``).
- ``pausegate_api`` is what every API replica connects as: INSERT and SELECT on the logs, nothing
  that rewrites them (``pausegate.apidb.schema.API_GRANTS``).
- Nobody else may connect: the telemetry's readers have logins on the same server.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from pausegate.apidb.database import ApiDatabase
from pausegate.config import StateDatabaseSettings
from pausegate.embedded.postgres import dsn_as, dsn_for_database

STATE_DATABASE = "pausegate_state"
OWNER_ROLE = "pausegate_state_owner"
API_ROLE = "pausegate_api"


def prepare_state_database(admin_dsn: str, *, database: str = STATE_DATABASE) -> StateDatabaseSettings:
    """Create the roles and the database the first time, migrate it; returns the ``api.state_db`` settings."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for role in (OWNER_ROLE, API_ROLE):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(OWNER_ROLE)))
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(database), sql.Identifier(API_ROLE)))
    dsn = dsn_for_database(admin_dsn, database)
    settings = StateDatabaseSettings(dsn=dsn_as(dsn, API_ROLE), owner_dsn=dsn_as(dsn, OWNER_ROLE))  # type: ignore[arg-type]
    ApiDatabase(settings).ensure_schema()
    return settings

