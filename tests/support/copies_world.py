"""A leak to copy from: a keystrokes table every employee could read, employees with a login and a
schema of their own, a break-glass role, on a real PostgreSQL cluster that logs every statement."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from pausegate.analysis.copies import find_copies
from pausegate.analysis.statement_reads import ReadScope
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.models.copies import CopiesFound
from tests.support.debian_pg import Cluster

DATASET = "keystrokes"
TABLE = "data.keystrokes"
EMPLOYEES = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "bystander")


@dataclass
class World:
    cluster: Cluster
    database: str
    prefix: str
    rows: int
    started: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(seconds=1))

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.database)

    @property
    def break_glass(self) -> str:
        return self.role("bg")

    def role(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def connect(self, name: str | None = None, **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection as one of the world's roles (by short name), or as the superuser."""
        user = self.role(name) if name else "postgres"
        return psycopg.connect(self.cluster.dsn(self.database, user), autocommit=True, **kwargs)

    def run(self, name: str | None, *statements: str) -> None:
        with self.connect(name) as conn:
            for statement in statements:
                conn.execute(self.sql(statement))  # type: ignore[call-overload]

    def sql(self, text: str) -> str:
        """``{alice}``-style placeholders filled with the world's role names."""
        return text.format(**{n: self.role(n) for n in (*EMPLOYEES, "bg", "owner")})

    def read(self, name: str, relation: str) -> int | None:
        """A real read as a role: the rows it sees, or None when the database refuses."""
        with self.connect(name) as conn:
            try:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    sql.SQL(".").join(map(sql.Identifier, relation.split("."))))).fetchone()
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable):
                return None
            return int(row[0]) if row else None

    def login_roles(self) -> list[str]:
        return [*EMPLOYEES, "owner"]

    async def records(self) -> list[Mapping[str, Any]]:
        """The window's lines of the server's own log, once the log holds everything logged so far."""
        async def fence(marker: str) -> None:
            async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                await conn.execute(sql.SQL("SELECT {}").format(sql.Literal(marker)))

        source = PostgresLogSource(self.cluster.log_dir, database=self.database).fenced(fence)
        end = datetime.now(UTC) + timedelta(minutes=1)
        return [r async for r in source.records(self.started, end)]

    def scope(self) -> ReadScope:
        return ReadScope.of(tables=[TABLE])

    async def find(self) -> CopiesFound:
        return find_copies(await self.records(), self.scope(), dataset_of=lambda t: DATASET if t == TABLE else None)


def make_world(cluster: Cluster, *, rows: int = 300) -> World:
    """A fresh database with the leaked table readable by PUBLIC, and roles for its employees."""
    world = World(cluster=cluster, database=f"t_{secrets.token_hex(4)}", prefix=f"p{secrets.token_hex(3)}_",
                  rows=rows)
    cluster.create_database(world.database)
    with world.connect() as conn:
        for name in (*EMPLOYEES, "owner", "bg"):
            role = sql.Identifier(world.role(name))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            if name in EMPLOYEES:
                conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(role, role))
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(role))  # shared sandboxes
        owner = sql.Identifier(world.role("owner"))
        conn.execute(sql.SQL("CREATE SCHEMA data AUTHORIZATION {}").format(owner))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA data TO PUBLIC"))
        conn.execute(sql.SQL(
            "CREATE TABLE data.keystrokes (id int PRIMARY KEY, employee text NOT NULL, typed text NOT NULL, "
            "at timestamptz NOT NULL)"))
        conn.execute(sql.SQL(
            "INSERT INTO data.keystrokes SELECT g, 'employee-' || (g % 40), "
            "'typed ' || md5('secret' || g) || ' ' || md5('more' || g), "
            "timestamptz '2026-11-01' + g * interval '1 minute' FROM generate_series(1, {}) g").format(
                sql.Literal(rows)))
        conn.execute(sql.SQL("ALTER TABLE data.keystrokes OWNER TO {}").format(owner))
        conn.execute(sql.SQL("GRANT SELECT ON data.keystrokes TO PUBLIC"))  # the leak
    world.started = datetime.now(UTC) - timedelta(milliseconds=100)
    return world
