"""Seed a PostgreSQL database with the worked example's dataset, roles and the leaky grants."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql

from pausegate.connectors.postgres.conditions import provenance_statements

SCHEMA_SQL = resources.files("pausegate.reference.example").joinpath("telemetry.sql")
CONSENT_REGISTRAR = "hr_consent"  # the runbook's consent.granting_roles
# The leak, each step as the role that made it (a migration, then a dashboard author): the statement log
# shows who opened each path and when, which is what a pause derives the exposure's origin from.
LEAK = (
    ("schema_migrations", "GRANT SELECT ON telemetry.keystrokes, telemetry.mouse_events TO all_employees"),
    ("schema_migrations", "GRANT SELECT ON telemetry.mouse_events TO PUBLIC"),
    ("dashboard_author", "GRANT SELECT ON analytics.recent_keystrokes TO all_employees"),
)


def employee_role(n: int) -> str:
    """The login role of the n-th employee (employee_0001, ...)."""
    return f"employee_{n:04d}"


def consents(n: int) -> bool | None:
    """The n-th employee's recorded consent: every fourth declined, every seventh never answered (None)."""
    if n % 7 == 0:
        return None
    return n % 4 != 0


def seed_example(dsn: str, *, employees: int = 50) -> None:
    """Create the telemetry schema, its tables, roles and grants, and ``employees`` login roles
    that are members of ``all_employees`` (idempotent)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_text())
        with conn.transaction():
            for provenance in provenance_statements("telemetry", "consent"):
                conn.execute(provenance)
        for role, statement in LEAK:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            conn.execute(statement)  # type: ignore[arg-type]
            conn.execute("RESET ROLE")
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'employee_%'")}
        for n in range(1, employees + 1):
            name = employee_role(n)
            if name not in existing:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE all_employees").format(sql.Identifier(name)))
            granted = consents(n)
            if granted is not None:
                # as HR's registry writes it: the trigger records the role, the runbook counts only that one
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(CONSENT_REGISTRAR)))
                conn.execute("INSERT INTO telemetry.consent (employee, granted) VALUES (%s, %s)"
                             " ON CONFLICT (employee) DO NOTHING", (name, granted))
                conn.execute("RESET ROLE")
