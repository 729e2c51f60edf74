"""The embedded stack's state database: ``pausegate_state`` in the embedded PostgreSQL, apart from the
program's data, owned by a role of its own and reached by the API as another.

- ``pausegate_state_owner`` owns the schema; migrations run as it (``owner_dsn``).
- ``pausegate_api`` is what every API replica connects as: INSERT and SELECT on the logs, nothing
  that rewrites them (``pausegate.state.schema.API_GRANTS``).
- Nobody else may connect: the telemetry's readers have logins on the same server.
"""

from __future__ import annotations

import psycopg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql

from pausegate.auth.directory import UserDirectory
from pausegate.config import Settings, StateDatabaseSettings
from pausegate.embedded.postgres import dsn_as, dsn_for_database
from pausegate.state.database import StateDatabase
from pausegate.state.users import PgUserDirectory

log = structlog.get_logger(__name__)

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
            directory = PgUserDirectory(db, key)
            import_users_file(settings, directory, key)
            return directory.ensure_first_admin()
    return UserDirectory(settings.api.users_file, key).ensure_first_admin()


def import_users_file(settings: Settings, directory: PgUserDirectory, key: Ed25519PrivateKey) -> int:
    """A data directory from before the state database: its users (and their tokens) move into the empty
    store once; the users file and its signed log stay where they are, as the record of what came before.
    A file that its own change log does not vouch for is not imported (its problems are logged)."""
    users_file = settings.api.users_file
    if not users_file.exists():
        return 0
    old = UserDirectory(users_file, key)
    changed = old.check()  # a hand edit since the last recorded change is recorded there, and not carried over
    problems = old.log.problems()
    if problems or changed is not None:
        log.error("users_file_not_imported", path=str(users_file), problems=problems[:10],
                  changed_outside_the_api=changed is not None)
        return 0
    imported = directory.import_users(old.users(), users_file.name)
    if imported:
        log.warning("users_file_imported", path=str(users_file), users=imported,
                    detail="users now live in the state database; the file is no longer read")
    return imported
