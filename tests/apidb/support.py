"""An API database of the test's own, as the embedded stack makes one (owner and API roles)."""

from __future__ import annotations

import uuid

import psycopg

from pausegate.config import StateDatabaseSettings
from pausegate.embedded.api_database import prepare_state_database
from pausegate.embedded.postgres import dsn_for_database


def new_state_database(admin_dsn: str) -> tuple[StateDatabaseSettings, str]:
    """A fresh API database; returns its settings and its superuser DSN (for tampering as someone with
    full access to the database)."""
    database = f"state_{uuid.uuid4().hex[:10]}"
    settings = prepare_state_database(admin_dsn, database=database)
    return settings, dsn_for_database(admin_dsn, database)


def tamper(superuser_dsn: str, statement: str, params: tuple[object, ...] = ()) -> None:
    """What someone with full access to the database can do: bypass the API's role and its trigger."""
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # triggers off (superuser only)
        conn.execute(statement.encode(), params)
