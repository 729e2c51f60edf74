"""Copies of the leaked data: finding them over N MiB of PostgreSQL jsonlog against reading the log once,
and quarantining 100 copies against the same ALTER statements run by a plain script, in one run.

Finding. The log is generated as ``bench_who_saw_what`` generates it (its busy server's statements, seeded),
with about ``--touch`` (1%) of the statements touching the dataset: its reads, and (one in ten) copies of it
(``CREATE TABLE ... AS``, ``INSERT ... SELECT`` into them, materialized views, ``COPY ... TO STDOUT``).
Measured in the same run:

* baseline:  read every file line by line and ``orjson.loads`` each line (nothing kept);
* finding:   the log source's own byte-level prefilter (``PostgresLogSource.blocks``: what sealing keeps),
             then ``CopyFinder`` over the kept lines; the ratio is baseline time / finding time (target
             >= 0.5), and every copy generated must be found;
* unfiltered (for comparison): ``CopyFinder`` fed every line of the first file, as MiB/s.

Quarantining. On a throw-away PostgreSQL: 100 copies owned by an employee and granted to PUBLIC are
quarantined as the activity does it (``quarantine.contain_all``: sessions that read them ended, each copy's
grants revoked, owner and schema changed in a transaction of its own, all verified by the database);
against 100 identical tables taken over by a plain script running the same REVOKE / ALTER / GRANT
statements, one transaction per table. Ratio = quarantine time / script time (target <= 2), the median
of ``--rounds`` rounds.

Free disk is checked before generating the log, and everything generated is removed afterwards.

Usage: PYTHONPATH=. python bench/bench_copies.py [--size-mb 256] [--touch 0.01] [--copies 100] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from functools import partial
from pathlib import Path

import orjson
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_who_saw_what import APPS, DATABASE, FILE_BYTES, OTHER, SCOPE, T0, MiB, _line, baseline

from pausegate.analysis.copies import CopyFinder
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.postgres.copies_catalog import QUARANTINE_SCHEMA
from pausegate.connectors.postgres.quarantine import contain_all
from pausegate.embedded.postgres import start_postgres
from pausegate.models.copies import Copy, CopyKind

READS = (
    "SELECT employee, window_title, typed_content FROM telemetry.keystrokes WHERE employee = 'employee_{e:04d}'",
    "SELECT * FROM analytics.recent_keystrokes LIMIT 100",
    "SELECT count(*) FROM telemetry.mouse_events WHERE x > {n}",
)
COPIES = (
    "CREATE TABLE sandbox_{e:04d}.keys_{c} AS SELECT * FROM telemetry.keystrokes WHERE employee <> 'x{n}'",
    "CREATE MATERIALIZED VIEW sandbox_{e:04d}.moves_{c} AS SELECT * FROM telemetry.mouse_events",
    "COPY (SELECT * FROM telemetry.keystrokes WHERE key_code = {n}) TO STDOUT",
)


def generate(directory: Path, size: int, touch: float, seed: int) -> tuple[int, int, set[str]]:
    """Writes the log; returns (lines, statements touching the dataset, schema.name of every relation copy)."""
    rng = random.Random(seed)
    sessions = [(f"6571a0b2.{i:x}", 3000 + i, rng.choice(APPS), f"app_{i % 40}", [0]) for i in range(300)]
    employees = [(f"6571a0b3.{i:x}", 5000 + i, "psql", f"employee_{i:04d}", [0]) for i in range(1, 60)]
    at, lines, touching, written, index, made = T0, 0, 0, 0, 0, 0
    relations: set[str] = set()
    while written < size:
        with (directory / f"postgresql-{index:04d}.json").open("wb") as f:
            file_bytes = 0
            while file_bytes < FILE_BYTES and written + file_bytes < size:
                at += timedelta(microseconds=rng.randrange(200, 2000))
                if rng.random() < touch:
                    session, pid, app, user, counter = rng.choice(employees)
                    e, n = int(user.rpartition("_")[2]), rng.randrange(1, 60)
                    counter[0] += 1
                    log = partial(_line, at, user, session, pid=pid, app=app, severity="LOG")
                    if rng.random() < 0.1:
                        made += 1
                        text = rng.choice(COPIES).format(e=e, n=n, c=made)
                        if text.startswith("CREATE"):
                            target = text.split(" AS ", 1)[0].rsplit(" ", 1)[1]
                            relations.add(target)
                            if "TABLE" in text and rng.random() < 0.5:  # and filled again later
                                out = log(counter[0], message="statement: " + text)
                                counter[0] += 1
                                out += log(counter[0], message=f"statement: INSERT INTO {target} "
                                           "SELECT * FROM telemetry.keystrokes WHERE captured_at > now()")
                                f.write(out)
                                file_bytes += len(out)
                                lines += 2
                                touching += 2
                                continue
                    else:
                        text = rng.choice(READS).format(e=e, n=n)
                    out = log(counter[0], message="statement: " + text)
                    touching += 1
                else:
                    session, pid, app, user, counter = rng.choice(sessions)
                    counter[0] += 1
                    text = rng.choice(OTHER).format(n=rng.randrange(1, 100_000))
                    message = ("execute <unnamed>: " if "$1" in text else "statement: ") + text
                    out = _line(at, user, session, counter[0], pid, app, "LOG", message)
                f.write(out)
                file_bytes += len(out)
                lines += out.count(b"\n")
        written += file_bytes
        index += 1
    return lines, touching, relations


async def find(directory: Path) -> tuple[float, float, int, set[str], int]:
    """(scan seconds, total seconds, kept lines, relation copies found, copies found)."""
    source = PostgresLogSource(directory, database=DATABASE, scope=SCOPE)
    start = time.perf_counter()
    blocks = [b async for b in source.blocks(T0 - timedelta(days=1), T0 + timedelta(days=30))]
    scanned = time.perf_counter() - start
    finder = CopyFinder(SCOPE)
    for block in blocks:
        finder.add([json.loads(line) for line in block.data.splitlines()])
    found = finder.finish()
    total = time.perf_counter() - start
    relations = {c.qualified for c in found.copies if c.qualified}
    return scanned, total, sum(b.records for b in blocks), {r for r in relations if r}, len(found.copies)


def unfiltered(directory: Path) -> tuple[float, float]:
    """(seconds, MiB) of ``CopyFinder`` fed every line of the first file."""
    path = sorted(directory.glob("*.json"))[0]
    data = path.read_bytes()
    finder = CopyFinder(SCOPE)
    start = time.perf_counter()
    for offset, line in enumerate(data.splitlines()):
        entry = orjson.loads(line)
        finder.add_entry(entry, {"file": path.name, "offset": offset})
    finder.finish()
    return time.perf_counter() - start, len(data) / MiB


# ---------------------------------------------------------------- quarantining


def _tables(dsn: str, prefix: str, n: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(n):
            conn.execute(sql.SQL("CREATE TABLE sandbox.{} AS SELECT * FROM data.keys").format(
                sql.Identifier(f"{prefix}_{i}")))
            conn.execute(sql.SQL("ALTER TABLE sandbox.{} OWNER TO copier").format(sql.Identifier(f"{prefix}_{i}")))
            conn.execute(sql.SQL("GRANT SELECT ON sandbox.{} TO PUBLIC").format(sql.Identifier(f"{prefix}_{i}")))


def _setup(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in (
            "DROP SCHEMA IF EXISTS sandbox CASCADE", f"DROP SCHEMA IF EXISTS {QUARANTINE_SCHEMA} CASCADE",
            "DROP SCHEMA IF EXISTS plain_quarantine CASCADE", "DROP SCHEMA IF EXISTS data CASCADE",
            "DO $$ BEGIN CREATE ROLE copier LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            "DO $$ BEGIN CREATE ROLE breakglass LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            "DO $$ BEGIN CREATE ROLE plain_quarantine NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            "CREATE SCHEMA data", "CREATE SCHEMA sandbox", "GRANT USAGE ON SCHEMA sandbox TO PUBLIC",
            "CREATE SCHEMA plain_quarantine AUTHORIZATION plain_quarantine",
            "CREATE TABLE data.keys AS SELECT g AS id, md5(g::text) AS typed FROM generate_series(1, 100) g",
        ):
            conn.execute(statement)  # type: ignore[arg-type]


def plain_script(dsn: str, n: int) -> float:
    """The same statements the quarantine runs for a copy, from a script that checks nothing."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        for i in range(n):
            table, moved = sql.Identifier(f"b_{i}"), sql.Identifier(f"b_{i}__quarantined")
            with conn.transaction():
                conn.execute(sql.SQL("REVOKE ALL ON sandbox.{} FROM PUBLIC CASCADE").format(table))
                conn.execute(sql.SQL("REVOKE ALL ON sandbox.{} FROM copier CASCADE").format(table))
                conn.execute(sql.SQL("ALTER TABLE sandbox.{} OWNER TO plain_quarantine").format(table))
                conn.execute(sql.SQL("ALTER TABLE sandbox.{} RENAME TO {}").format(table, moved))
                conn.execute(sql.SQL("ALTER TABLE sandbox.{} SET SCHEMA plain_quarantine").format(moved))
                conn.execute(sql.SQL("GRANT SELECT ON plain_quarantine.{} TO breakglass").format(moved))
        return time.perf_counter() - start


async def quarantine(dsn: str, n: int) -> float:
    copies = [Copy(id=f"{i:016x}", kind=CopyKind.CREATE_TABLE_AS, schema_name="sandbox", name=f"a_{i}")
              for i in range(n)]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        done = await contain_all(conn, copies, break_glass=("breakglass",))
        elapsed = time.perf_counter() - start
    assert all(d.verified and d.contained.state == "quarantined" for d in done)
    return elapsed


def quarantine_rounds(root: Path, n: int, rounds: int) -> list[tuple[float, float]]:
    dsn, server = start_postgres(root / "pg", keep=False)
    try:
        out = []
        for _ in range(rounds):
            _setup(dsn)
            _tables(dsn, "a", n)
            _tables(dsn, "b", n)
            script = plain_script(dsn, n)
            out.append((script, asyncio.run(quarantine(dsn, n))))
        return out
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--touch", type=float, default=0.01, help="share of statements that touch the dataset")
    parser.add_argument("--copies", type=int, default=100, help="copies quarantined")
    parser.add_argument("--rounds", type=int, default=3, help="quarantine rounds, each against its own script")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="small sizes, for CI: 8 MiB, 10 copies, one round")
    args = parser.parse_args()
    if args.smoke:
        args.size_mb, args.copies, args.rounds = 8, 10, 1
    size = args.size_mb * MiB
    base = args.dir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    need = int(size * 1.1) + 512 * MiB  # the log, a throw-away cluster and room to spare
    if free < need:
        sys.exit(f"not enough free disk under {base}: {free // MiB} MiB free, {need // MiB} MiB needed")
    root = Path(tempfile.mkdtemp(prefix="bench-copies-", dir=base))
    try:
        logs = root / "pglog"
        logs.mkdir()
        start = time.perf_counter()
        lines, touching, relations = generate(logs, size, args.touch, args.seed)
        print(f"generated {size / MiB:.0f} MiB, {lines} lines, {touching} statements touching the dataset "
              f"({touching / lines:.2%}), {len(relations)} tables and views copied, in "
              f"{time.perf_counter() - start:.1f} s")
        gc.collect()
        t_base, n = baseline(logs)
        print(f"baseline   read + orjson.loads every line: {t_base:.2f} s ({size / MiB / t_base:.0f} MiB/s, {n} lines)")
        gc.collect()
        scanned, total, kept, found, copies = asyncio.run(find(logs))
        print(f"finding copies: {total:.2f} s ({size / MiB / total:.0f} MiB/s; the log source's prefilter "
              f"{scanned:.2f} s keeping {kept} lines, the finder {total - scanned:.2f} s); {copies} copies found")
        missing = relations - found
        assert not missing, sorted(missing)[:10]  # the figures are for a correct answer
        print(f"  every copied table and view found: {len(relations)}")
        print(f"  ratio to baseline: {t_base / total:.2f} (target >= 0.5)")
        seconds, mib = unfiltered(logs)
        print(f"  for comparison, the finder fed every line: {mib / seconds:.1f} MiB/s")
        rounds = quarantine_rounds(root, args.copies, args.rounds)
        ratios = sorted(q / s for s, q in rounds)
        script, held = sorted(rounds, key=lambda r: r[1] / r[0])[len(rounds) // 2]
        print(f"quarantining {args.copies} copies (median of {len(rounds)} rounds): {held:.2f} s vs the plain script "
              f"{script:.2f} s; ratio {statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)};"
              f" target <= 2)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
