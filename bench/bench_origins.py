"""The exposure's origins over N MiB of PostgreSQL jsonlog, against reading the log once, in one run.

The log is generated as ``bench_who_saw_what`` generates it (its busy server's statements, seeded), with
about ``--touch`` (1%) of the statements reading the dataset (employees' reads, directly and through the
dashboard view), and the leak written into it at known places, by named roles: the migration's grant to
all_employees (``SET ROLE schema_migrations``), the dashboard author's view and its grant to PUBLIC, a
membership granted, a grant revoked and made again, each in a session of its own among the traffic.

Measured in the same run:

* baseline: read every file line by line and ``orjson.loads`` each line (nothing kept);
* origins:  the log source's byte-level prefilter with the origins' needles (``activities.origins.needle_scope``:
            what the origin step seals), then ``OriginFinder`` over the kept lines; the ratio is baseline
            time / origins time (target >= 0.5), and every opening written must be found, at its time, by its
            role.

Free disk is checked before generating the log, and everything generated is removed afterwards.

Usage: PYTHONPATH=. python bench/bench_origins.py [--size-mb 256] [--touch 0.01] [--seed 7] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_who_saw_what import APPS, DATABASE, FILE_BYTES, OTHER, T0, MiB, _line, baseline

from activities.origins import needle_scope
from pausegate.analysis.origins import OriginFinder
from pausegate.analysis.origins_paths import scope_paths
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.models.access import ExposureScope, GrantRecord, MembershipRecord, ObjectRecord, RoleRecord
from pausegate.models.origins import OriginDocument

EMPLOYEES = 60
READS = (
    "SELECT employee, window_title, typed_content FROM telemetry.keystrokes WHERE employee = 'employee_{e:04d}'",
    "SELECT * FROM analytics.recent_keystrokes LIMIT {n}",
    "SELECT count(*) FROM telemetry.mouse_events WHERE x > {n}",
)
# (share of the log at which it is written, session user, statements); {k} is its place
LEAK = (
    (0.05, "deploy", ("SET ROLE schema_migrations",
                      "GRANT SELECT ON telemetry.keystrokes, telemetry.mouse_events TO all_employees",
                      "RESET ROLE")),
    (0.20, "dashboard_author", ("CREATE VIEW analytics.recent_keystrokes AS SELECT employee, typed_content "
                                "FROM telemetry.keystrokes",)),
    (0.30, "dashboard_author", ("GRANT SELECT ON analytics.recent_keystrokes TO PUBLIC",)),
    (0.40, "deploy", ("GRANT all_employees TO employee_0061",)),
    (0.60, "deploy", ("SET ROLE schema_migrations", "REVOKE SELECT ON telemetry.mouse_events FROM all_employees",
                      "RESET ROLE")),
    (0.70, "deploy", ("/* migration 0043: revoke */ SET ROLE schema_migrations; "
                      "GRANT SELECT ON telemetry.mouse_events TO all_employees",)),
)


def scope() -> ExposureScope:
    """The exposure scope the pause would have recorded for this log's dataset."""
    k, m, v = "telemetry.keystrokes", "telemetry.mouse_events", "analytics.recent_keystrokes"
    employees = [f"employee_{i:04d}" for i in range(1, EMPLOYEES + 2)]
    return ExposureScope(
        dataset="telemetry", objects=[k, m, v], schema_name="telemetry", break_glass_roles=["security_breakglass"],
        access=[],
        grants=[GrantRecord(object=k, grantee="all_employees", grantor="schema_migrations", privilege="SELECT"),
                GrantRecord(object=m, grantee="all_employees", grantor="schema_migrations", privilege="SELECT"),
                GrantRecord(object=v, object_kind="view", grantee="PUBLIC", grantor="dashboard_author",
                            privilege="SELECT"),
                GrantRecord(object=k, grantee="telemetry_analysts", grantor="postgres", privilege="SELECT")],
        object_details=[ObjectRecord(name=k, kind="table", owner="postgres"),
                        ObjectRecord(name=m, kind="table", owner="postgres"),
                        ObjectRecord(name=v, kind="view", owner="dashboard_author", depends_on=[k])],
        roles=[RoleRecord(name="all_employees"), *(RoleRecord(name=e, login=True) for e in employees)],
        memberships=[MembershipRecord(role="all_employees", member=e, grantor="postgres") for e in employees],
        recorded_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def generate(directory: Path, size: int, touch: float, seed: int) -> tuple[int, list[list[datetime]]]:
    """Writes the log; returns (lines, when each statement of each leak step was logged)."""
    rng = random.Random(seed)
    sessions = [(f"6571a0b2.{i:x}", 3000 + i, rng.choice(APPS), f"app_{i % 40}", [0]) for i in range(300)]
    employees = [(f"6571a0b3.{i:x}", 5000 + i, "psql", f"employee_{i:04d}", [0]) for i in range(1, EMPLOYEES)]
    at, lines, written, index, step = T0, 0, 0, 0, 0
    leaked: list[list[datetime]] = []
    while written < size:
        with (directory / f"postgresql-{index:04d}.json").open("wb") as f:
            file_bytes = 0
            while file_bytes < FILE_BYTES and written + file_bytes < size:
                at += timedelta(microseconds=rng.randrange(200, 2000))
                if step < len(LEAK) and written + file_bytes >= LEAK[step][0] * size:
                    _, user, statements = LEAK[step]
                    leaked.append([])
                    for n, text in enumerate(statements, 1):
                        at += timedelta(milliseconds=1)
                        out = _line(at, user, f"6571a0b9.{step:x}", n, 9000 + step, "migrate", "LOG",
                                    "statement: " + text)
                        f.write(out)
                        file_bytes += len(out)
                        lines += 1
                        leaked[-1].append(at.replace(microsecond=at.microsecond // 1000 * 1000))  # as logged
                    step += 1
                    continue
                if rng.random() < touch:
                    session, pid, app, user, counter = rng.choice(employees)
                    counter[0] += 1
                    text = rng.choice(READS).format(e=int(user.rpartition("_")[2]), n=rng.randrange(1, 60))
                    out = _line(at, user, session, counter[0], pid, app, "LOG", "statement: " + text)
                else:
                    session, pid, app, user, counter = rng.choice(sessions)
                    counter[0] += 1
                    text = rng.choice(OTHER).format(n=rng.randrange(1, 100_000))
                    message = ("execute <unnamed>: " if "$1" in text else "statement: ") + text
                    out = _line(at, user, session, counter[0], pid, app, "LOG", message)
                f.write(out)
                file_bytes += len(out)
                lines += 1
        written += file_bytes
        index += 1
    return lines, leaked


async def derive(directory: Path) -> tuple[float, float, int, OriginDocument]:
    """(scan seconds, total seconds, kept lines, the origin document)."""
    recorded = scope()
    paths = scope_paths([recorded], ["telemetry_analysts"])
    source = PostgresLogSource(directory, database=DATABASE, scope=needle_scope(paths))
    start = time.perf_counter()
    window = (T0 - timedelta(days=1), T0 + timedelta(days=30))
    blocks = [b async for b in source.blocks(*window)]
    scanned = time.perf_counter() - start
    finder = OriginFinder(paths, recorded_at=recorded.recorded_at)
    for block in blocks:
        finder.add([json.loads(line) for line in block.data.splitlines()], "bench")
    document = finder.finish(window_start=window[0], window_end=window[1])
    return scanned, time.perf_counter() - start, sum(b.records for b in blocks), document


def check(document: OriginDocument, leaked: list[list[datetime]]) -> None:
    """The figures are for a correct answer: every opening where and by whom it was written."""
    paths = {p.id: p for p in document.paths}
    keys = paths["grant:telemetry.keystrokes:all_employees"]
    assert keys.intervals[0].opened_at == leaked[0][1], keys.intervals
    assert keys.intervals[0].opened_by is not None and keys.intervals[0].opened_by.role == "schema_migrations"
    view = paths["grant:analytics.recent_keystrokes:PUBLIC"]
    assert view.intervals[0].opened_at == leaked[2][0] and view.intervals[0].opened_by is not None
    assert view.intervals[0].opened_by.user == "dashboard_author"
    assert paths["view:analytics.recent_keystrokes:dashboard_author"].intervals[0].opened_at == leaked[1][0]
    assert paths["membership:all_employees:employee_0061"].intervals[0].opened_at == leaked[3][0]
    mouse = paths["grant:telemetry.mouse_events:all_employees"]
    assert [(i.opened_at, i.closed_at) for i in mouse.intervals] == [(leaked[0][1], leaked[4][1]),
                                                                      (leaked[5][0], None)]
    assert mouse.intervals[1].opened_by is not None
    assert mouse.intervals[1].opened_by.role == "schema_migrations"
    assert paths["grant:telemetry.keystrokes:telemetry_analysts"].origin == "before_log"
    assert document.headline is not None and document.headline.path == keys.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--touch", type=float, default=0.01, help="share of statements that read the dataset")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="a small log, for CI: 8 MiB")
    args = parser.parse_args()
    if args.smoke:
        args.size_mb = 8
    size = args.size_mb * MiB
    base = args.dir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    need = int(size * 1.1) + 256 * MiB
    if free < need:
        sys.exit(f"not enough free disk under {base}: {free // MiB} MiB free, {need // MiB} MiB needed")
    root = Path(tempfile.mkdtemp(prefix="bench-origins-", dir=base))
    try:
        start = time.perf_counter()
        lines, leaked = generate(root, size, args.touch, args.seed)
        print(f"generated {size / MiB:.0f} MiB, {lines} lines, the leak in {len(leaked)} steps, in "
              f"{time.perf_counter() - start:.1f} s")
        gc.collect()
        t_base, n = baseline(root)
        print(f"baseline   read + orjson.loads every line: {t_base:.2f} s ({size / MiB / t_base:.0f} MiB/s, {n} lines)")
        gc.collect()
        scanned, total, kept, document = asyncio.run(derive(root))
        print(f"origins:   {total:.2f} s ({size / MiB / total:.0f} MiB/s; the log source's prefilter {scanned:.2f} s "
              f"keeping {kept} lines, the finder {total - scanned:.2f} s); {len(document.paths)} paths, "
              f"{sum(len(p.intervals) for p in document.paths)} intervals")
        check(document, leaked)
        sentence = document.headline.sentence() if document.headline else ""
        print(f"  every opening found, at its time, by its role; {sentence}")
        print(f"  ratio to baseline: {t_base / total:.2f} (target >= 0.5)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
