"""A break-glass grant in PostgreSQL: what it can read, what it cannot pass on, how it ends, and its
refusal where its statements could not be logged (Debian PostgreSQL 15, passwords on the socket)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pausegate.connectors.postgres.break_glass import GrantRefused, close_grant, open_grant, verify_closed
from pausegate.connectors.postgres.copies_catalog import QUARANTINE_SCHEMA
from pausegate.models.break_glass import GrantTarget, TableAccess, scram_verifier
from tests.support.break_glass import PASSWORD, SALT, login_trusted, login_with_password, take_passwords
from tests.support.debian_pg import BIN, Cluster, _as_server_user, running_cluster
from tests.support.fault_report import record_result

SEED = """
CREATE ROLE analyst_other LOGIN;
CREATE SCHEMA telemetry;
CREATE TABLE telemetry.keystrokes (id int, employee text, typed_content text);
CREATE TABLE telemetry.mouse_events (id int, employee text);
INSERT INTO telemetry.keystrokes SELECT g, 'e' || g, 'typed ' || g FROM generate_series(1, 50) g;
"""


@pytest.fixture
def database(cluster: Cluster) -> Iterator[str]:
    take_passwords(cluster)
    name = f"bg_{secrets.token_hex(4)}"
    cluster.create_database(name)
    with cluster.connect(name) as conn:
        conn.execute("DROP ROLE IF EXISTS analyst_other")
        conn.execute(SEED)  # type: ignore[call-overload]
    yield name
    cluster.drop_database(name)


def target(grant_id: str = "g1", *, columns: list[str] | None = None, tables: bool = True) -> GrantTarget:
    return GrantTarget(pause_key="p/1", grant_id=grant_id, role=f"pausegate_bg_{secrets.token_hex(6)}",
                       connection="telemetry-db", schema_name="telemetry",
                       tables=[TableAccess(table="keystrokes", columns=columns or [])] if tables else [],
                       scram_verifier=scram_verifier(PASSWORD, SALT), program="p")


async def tool(cluster: Cluster, database: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    return await psycopg.AsyncConnection.connect(cluster.dsn(database), autocommit=True)


class TestGrantInPostgres:
    async def test_a_long_query_is_ended_and_neither_password_nor_trust_logs_in_after_the_end(
            self, cluster: Cluster, database: str) -> None:
        t = target()
        async with await tool(cluster, database) as conn:
            opened = await open_grant(conn, t)
        assert opened.logging == "log_statement"
        with login_with_password(cluster, database, t.role) as by_password:
            assert by_password.execute("SELECT count(*) FROM telemetry.keystrokes").fetchone() == (50,)
        with login_trusted(cluster, database, t.role) as trusted:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                trusted.execute("SELECT * FROM telemetry.mouse_events")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            login_with_password(cluster, database, t.role, "wrong")

        holder = await psycopg.AsyncConnection.connect(
            host=str(cluster.root), port=cluster.port, dbname=database, user=t.role, password=PASSWORD,
            autocommit=True)
        long_query = asyncio.create_task(holder.execute("SELECT pg_sleep(600), count(*) FROM telemetry.keystrokes"))
        async with await tool(cluster, database) as conn:
            for _ in range(500):  # the query is running on the server
                cur = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND "
                                         "state = 'active'", (t.role,))
                if (await cur.fetchone()) == (1,):
                    break
                await asyncio.sleep(0.01)
            revoked = await close_grant(conn, t)
            assert revoked.verified and revoked.problems == []
            assert revoked.sessions_terminated == 1
        with pytest.raises(psycopg.OperationalError):
            await long_query
        await holder.close()

        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            login_with_password(cluster, database, t.role)
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            login_trusted(cluster, database, t.role)

    async def test_the_holder_cannot_pass_the_access_on(self, cluster: Cluster, database: str) -> None:
        t = target(columns=["id", "employee"])
        async with await tool(cluster, database) as conn:
            await open_grant(conn, t)
        with login_trusted(cluster, database, t.role) as holder:
            assert holder.execute("SELECT id, employee FROM telemetry.keystrokes LIMIT 1").fetchone() == (1, "e1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                holder.execute("SELECT typed_content FROM telemetry.keystrokes")
            # no grant option: PostgreSQL grants nothing (a warning), and the other role still reads nothing
            holder.execute("GRANT SELECT (id, employee) ON telemetry.keystrokes TO analyst_other")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                holder.execute(sql.SQL("GRANT {} TO analyst_other").format(sql.Identifier(t.role)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                holder.execute("CREATE ROLE smuggled LOGIN")
        with cluster.connect(database) as admin:
            row = admin.execute("SELECT has_any_column_privilege('analyst_other', 'telemetry.keystrokes', 'SELECT'), "
                                "(SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                                " WHERE r.rolname = %s)", (t.role,)).fetchone()
        assert row == (False, 0)
        record_result("insider holding a break-glass grant", "passes it on: GRANT of the table, GRANT of the role",
                      injected=2, outcome="nothing granted: the other role reads nothing, the membership refused")
        async with await tool(cluster, database) as conn:
            assert (await close_grant(conn, t)).verified
            assert await verify_closed(conn, t) == []
            # closing again finds nothing left to do, and says so
            again = await close_grant(conn, t)
            assert again.verified and again.sessions_terminated == 0

    async def test_a_grant_whose_statements_cannot_be_logged_is_refused_and_leaves_no_role(
            self, cluster: Cluster, database: str) -> None:
        with cluster.connect(database) as admin:
            admin.execute("DROP ROLE IF EXISTS bg_tool")
            admin.execute("CREATE ROLE bg_tool LOGIN CREATEROLE")
            admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA telemetry TO bg_tool WITH GRANT OPTION")
            admin.execute("GRANT USAGE ON SCHEMA telemetry TO bg_tool WITH GRANT OPTION")
        t = target()
        async with await psycopg.AsyncConnection.connect(cluster.dsn(database, "bg_tool"), autocommit=True) as conn:
            with pytest.raises(GrantRefused, match="log_statement"):
                await open_grant(conn, t)
        with cluster.connect(database) as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (t.role,)).fetchone() is None
            record_result("deployment without statement logging", "a grant whose statements no log would keep",
                          injected=1, outcome="refused with the reason; no role left behind")
            admin.execute("REVOKE ALL ON ALL TABLES IN SCHEMA telemetry FROM bg_tool CASCADE")
            admin.execute("REVOKE ALL ON SCHEMA telemetry FROM bg_tool CASCADE")
            admin.execute("DROP ROLE bg_tool")

    async def test_a_grant_on_a_quarantined_copy_reads_that_copy_only(self, cluster: Cluster, database: str) -> None:
        with cluster.connect(database) as admin:
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(QUARANTINE_SCHEMA)))
            for name in ("keys.for later", "other_copy"):  # whatever the copier called it
                admin.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM telemetry.keystrokes").format(
                    sql.Identifier(QUARANTINE_SCHEMA, name)))
        copy = f"{QUARANTINE_SCHEMA}.keys.for later"
        t = target(tables=False)
        async with await tool(cluster, database) as conn:
            await open_grant(conn, t, [copy])
        with login_trusted(cluster, database, t.role) as holder:
            assert holder.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(QUARANTINE_SCHEMA, "keys.for later"))).fetchone() == (50,)
            for other in (sql.Identifier(QUARANTINE_SCHEMA, "other_copy"), sql.Identifier("telemetry", "keystrokes")):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    holder.execute(sql.SQL("SELECT 1 FROM {}").format(other))
        async with await tool(cluster, database) as conn:
            revoked = await close_grant(conn, t, [copy])
            assert revoked.verified and await verify_closed(conn, t, [copy]) == []
            cur = await conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT'), has_schema_privilege(%s, %s, "
                                     "'USAGE')", (t.role, sql.Identifier(QUARANTINE_SCHEMA, "keys.for later")
                                                  .as_string(conn), t.role, QUARANTINE_SCHEMA))
            assert await cur.fetchone() == (False, False)
            with pytest.raises(GrantRefused, match="quarantine schema"):
                await open_grant(conn, target(tables=False), ["telemetry.keystrokes"])


@pytest.fixture(scope="module")
def audited() -> Iterator[Cluster]:
    """A cluster with pgaudit loaded and its object-audit role set (pgaudit.role = auditor)."""
    with running_cluster("break-glass-pgaudit") as c:
        with (c.root / "data" / "postgresql.conf").open("a") as conf:
            conf.write("shared_preload_libraries = 'pgaudit'\npgaudit.role = 'auditor'\npgaudit.log_relation = on\n")
        subprocess.run([str(BIN / "pg_ctl"), "-D", str(c.root / "data"), "-w", "-l", str(c.root / "server.log"),
                        "restart"], check=True, capture_output=True, **_as_server_user())  # type: ignore[call-overload]
        with c.connect() as conn:
            conn.execute("CREATE ROLE auditor NOLOGIN")
            conn.execute("CREATE EXTENSION pgaudit")
        yield c


class TestGrantUnderPgaudit:
    async def test_where_log_statement_is_out_of_reach_pgaudit_records_the_grants_reads(self, audited: Cluster
                                                                                        ) -> None:
        name = f"bg_{secrets.token_hex(4)}"
        audited.create_database(name)
        with audited.connect(name) as admin:
            admin.execute(SEED.replace("CREATE ROLE analyst_other LOGIN;", ""))  # type: ignore[call-overload]
            # the tool's role: no superuser, so log_statement is not its to set
            admin.execute("CREATE ROLE bg_tool LOGIN CREATEROLE IN ROLE pg_signal_backend")
            admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA telemetry TO bg_tool WITH GRANT OPTION")
            admin.execute("GRANT USAGE ON SCHEMA telemetry TO bg_tool WITH GRANT OPTION")
        t = target()
        async with await psycopg.AsyncConnection.connect(audited.dsn(name, "bg_tool"), autocommit=True) as conn:
            opened = await open_grant(conn, t)
            assert opened.logging == "pgaudit"
            with login_trusted(audited, name, t.role) as holder:
                holder.execute("SELECT count(*) FROM telemetry.keystrokes /* pgaudit-marker */")
            assert (await close_grant(conn, t)).verified

        def audited_lines() -> list[dict[str, object]]:
            found = []
            for path in sorted(audited.log_dir.glob("*.json")):
                for raw in path.read_text().splitlines():
                    entry = json.loads(raw)
                    if entry.get("user") == t.role and "AUDIT: OBJECT" in str(entry.get("message", "")):
                        found.append(entry)
            return found

        for _ in range(500):  # the logging collector writes when it gets to it
            if audited_lines():
                break
            await asyncio.sleep(0.02)
        [line] = audited_lines()
        assert "telemetry.keystrokes" in str(line["message"]) and "pgaudit-marker" in str(line["message"])
