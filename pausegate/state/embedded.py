"""The embedded stack's state database: ``pausegate_state`` in the embedded PostgreSQL, apart from the
program's data, owned by a role of its own and reached by the API as another.

- ``pausegate_state_owner`` owns the schema; migrations run as it (``owner_dsn``).
- ``pausegate_api`` is what every API replica connects as: INSERT and SELECT on the logs, nothing
  that rewrites them (``pausegate.state.schema.API_GRANTS``).
- Nobody else may connect: the telemetry's readers have logins on the same server.
"""

from __future__ import annotations

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql

from pausegate.auth.directory import UserDirectory
from pausegate.config import Settings, StateDatabaseSettings
from pausegate.embedded.postgres import dsn_as, dsn_for_database
from pausegate.state.database import StateDatabase
from pausegate.state.users import PgUserDirectory

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
    StateDatabase(settings).ensure_schema()
    return settings


def ensure_first_admin(settings: Settings, key: Ed25519PrivateKey) -> str | None:
    """Create (and record) the first administrator where this deployment keeps its users, when it has
    none; their token, or None."""
    if settings.api.state == "postgres" and settings.api.state_db is not None:
        with StateDatabase(settings.api.state_db) as db:
            return PgUserDirectory(db, key).ensure_first_admin()
    return UserDirectory(settings.api.users_file, key).ensure_first_admin()
