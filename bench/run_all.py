"""Run every benchmark once, with sizes chosen for a 2-core machine, and write docs/benchmarks.md.

At most 30 minutes and 10 GB of disk: free space is checked first, each benchmark runs under its own
time limit (a benchmark that overruns is stopped and reported as such) and cleans up after itself.
Each figure is a ratio against a baseline measured in the same benchmark run; the page gives the
command that reproduces it. Text after the ``<!-- notes -->`` line of an existing page is kept.

    python bench/run_all.py [--out docs/benchmarks.md] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 30 * 60
DISK_BYTES = 10 * 1024**3
NOTES = "<!-- notes -->"


@dataclass
class Bench:
    name: str
    args: list[str]
    limit: float  # seconds
    quick: list[str] | None = None
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0
    outcome: str = "not run"

    def command(self, quick: bool) -> str:
        return " ".join(["python", *self.argv(quick)])

    def argv(self, quick: bool) -> list[str]:
        return [*self.args[:1], *(self.quick if quick and self.quick is not None else self.args[1:])]

    def find(self, needle: str) -> str | None:
        """The last output line containing ``needle``."""
        return next((line for line in reversed(self.lines) if needle in line), None)


def number_after(line: str | None, marker: str) -> float | None:
    """The number right after the first ``marker`` in ``line`` (None when either is missing)."""
    if line is None or marker not in line:
        return None
    tail = line[line.index(marker) + len(marker):].lstrip()
    digits = ""
    for ch in tail:
        if ch.isdigit() or ch in ".-":
            digits += ch
        else:
            break
    try:
        return float(digits)
    except ValueError:
        return None


def benches() -> list[Bench]:
    contain = [Bench(f"contain {n:,}", ["bench/bench_contain.py", "--agents", str(n), "--runs", "5"], 420,
                     ["--agents", str(max(n // 100, 100)), "--runs", "1"]) for n in (1_000, 100_000, 1_000_000)]
    return [
        *contain,
        Bench("concurrent", ["bench/bench_concurrent.py", "--programs", "50", "--agents", "1000", "--alone", "5"],
              420, ["--programs", "5", "--alone", "1"]),
        Bench("reviewers", ["bench/bench_reviewers.py"], 360,
              ["--sequential", "30", "--concurrent", "20", "--reviewers", "10", "--pauses", "2", "--actions", "50"]),
        Bench("recovery", ["bench/bench_recovery.py", "--rounds", "5"], 420, ["--rounds", "1"]),
        Bench("revoke", ["bench/bench_revoke.py", "--roles", "50000", "--tables", "200"], 480,
              ["--roles", "500", "--tables", "20"]),
        Bench("seal", ["bench/bench_seal.py", "--mb", "256", "--rounds", "3", "--trace-mb", "0"], 240,
              ["--mb", "32", "--rounds", "1", "--trace-mb", "0", "--pool-mb", "16"]),
        Bench("seal limits", ["bench/bench_seal_limits.py", "--mb", "256"], 120, ["--mb", "32"]),
        Bench("who saw what", ["bench/bench_who_saw_what.py", "--size-mb", "256", "--rounds", "3"], 240,
              ["--size-mb", "16", "--rounds", "1"]),
        Bench("console render", ["bench/bench_console_render.py", "--runs", "30"], 120, ["--runs", "5"]),
        Bench("copies", ["bench/bench_copies.py", "--size-mb", "256", "--copies", "100", "--rounds", "3"], 300,
              ["--smoke"]),
    ]


def run(bench: Bench, quick: bool, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left < 30:
        bench.outcome = "skipped: the 30-minute budget was used up"
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    print(f"== {bench.name}: {bench.command(quick)}", flush=True)
    try:
        done = subprocess.run([sys.executable, *bench.argv(quick)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=min(bench.limit, left))
        out = done.stdout
        bench.outcome = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        if done.returncode != 0:
            out += "\n" + "\n".join(done.stderr.strip().splitlines()[-5:])
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        bench.outcome = f"stopped after {min(bench.limit, left):.0f} s (its time limit)"
    bench.seconds = time.monotonic() - started
    # the summary, without the services' log lines
    bench.lines = [line for line in out.splitlines()
                   if line.strip() and "[info" not in line and "[warn" not in line and not line.startswith("Temporal")]
    for line in bench.lines[-12:]:
        print(f"   {line}", flush=True)


def verdict(value: float | None, target: float, *, lower_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value <= target if lower_is_better else value >= target
    return "met" if ok else "NOT met"


def targets(b: dict[str, Bench]) -> list[tuple[str, str, str, str]]:
    """(measure, now, target, verdict) rows."""
    rows = []
    big = b["contain 1,000,000"]
    ratio = number_after(big.find("baseline (same activities"), "; ratio")
    events = big.find("history events at containment")
    worst_events = max((int(x) for x in events.split(":")[1].split(",")), default=None) if events else None
    rows.append(("time to contain, 1,000,000 agents (fully contained / same activities without a workflow)",
                 f"{ratio}x, {worst_events} history events", "<= 1.15x, <= 100 events",
                 "met" if ratio is not None and worst_events is not None and ratio <= 1.15 and worst_events <= 100
                 else ("not measured" if ratio is None else "NOT met")))
    for n in ("1,000", "100,000", "1,000,000"):
        c = b[f"contain {n}"]
        rows.append((f"switch off / access gone, {n} agents (against the baseline's)",
                     f"{number_after(c.find('switch off: median'), '; ratio')}x / "
                     f"{number_after(c.find('access gone: median'), '; ratio')}x", "(reported)", ""))
    overheads = [number_after(b[f"contain {n}"].find("orchestration overhead"), "overhead:")
                 for n in ("1,000", "100,000", "1,000,000")]
    known = [o for o in overheads if o is not None]
    rows.append(("orchestration overhead at 1,000 / 100,000 / 1,000,000 agents (ms)",
                 " / ".join("-" if o is None else f"{o:.0f}" for o in overheads), "<= 100 ms, flat",
                 verdict(max(known) if known else None, 100)))
    for n in ("100,000", "1,000,000"):
        line = b[f"contain {n}"].find("peak RSS MiB")
        rows.append((f"peak RSS, urgent worker / worker and client / fleet, {n} agents (MiB, each run)",
                     line.split(":", 1)[1].strip() if line else "not measured", "in proportion", ""))
    cc = b["concurrent"]
    for what in ("switch off", "access gone"):
        v = number_after(cc.find(f"{what} at once"), "worst / alone =")
        rows.append((f"concurrent pauses (50 x 1,000): {what}, worst / alone", f"{v}x", "<= 2x", verdict(v, 2)))
    last = number_after(cc.find("last / one after another"), "last / one after another =")
    rows.append(("concurrent pauses: last fully contained / one after another", f"{last}x", "<= 1x",
                 verdict(last, 1)))
    stuck = number_after(cc.find("stuck:"), "stuck:")
    rows.append(("concurrent pauses: stuck", f"{stuck if stuck is None else int(stuck)}", "0", verdict(stuck, 0)))
    rv = b["reviewers"]
    seq = number_after(rv.find("sequential amends"), "bare p99 =")
    rows.append(("reviewer actions: sequential p99 / bare update p99", f"{seq}x", "<= 2x", verdict(seq, 2)))
    burst = number_after(rv.find("concurrent amends on one pause"), "bare p99 =")
    rows.append(("reviewer actions: 100 concurrent on one pause, p99 / bare update p99", f"{burst}x", "<= 20x",
                 verdict(burst, 20)))
    once = rv.find("applied exactly once")
    rows.append(("reviewer actions: 1,000 from 100 reviewers across 10 pauses, applied exactly once",
                 (once or "not measured").split(":", 1)[-1].strip(), "yes",
                 "met" if once and once.endswith("yes") else ("not measured" if once is None else "NOT met")))
    rec = number_after(b["recovery"].find("recovery under load / quiet"), "quiet =")
    rows.append(("crash recovery with two CPU-bound processes / without", f"{rec}x", "<= 1.5x", verdict(rec, 1.5)))
    rk = b["revoke"]
    for what in ("access gone / plain REVOKEs", "verified / plain REVOKEs"):
        v = number_after(rk.find(what), "=")
        rows.append((f"revoke at 50,000 roles, 200 tables: {what}", f"{v}x" if v is not None else "not printed",
                     "(reported)", ""))
    seal = b["seal"].find("summary:")
    rows.append(("sealing / plain sha256 throughput", seal.removeprefix("summary: ") if seal else "not measured",
                 ">= 0.7", ""))
    who = number_after(b["who saw what"].find("ratio to baseline"), "baseline:")
    rows.append(("who saw what / read + parse every line", f"{who}", ">= 0.5", verdict(who, 0.5,
                                                                                      lower_is_better=False)))
    cp = b["copies"]
    finding = number_after(cp.find("ratio to baseline"), "baseline:")
    rows.append(("finding copies / read + parse every line", f"{finding}", ">= 0.5",
                 verdict(finding, 0.5, lower_is_better=False)))
    held = number_after(cp.find("quarantining"), "; ratio")
    rows.append(("quarantining 100 copies / the same ALTERs from a plain script", f"{held}x", "<= 2x",
                 verdict(held, 2)))
    render = number_after(b["console render"].find("render / json"), "=")
    rows.append(("console page render / API JSON", f"{render}x", "(reported)", ""))
    return rows


def page(results: list[Bench], quick: bool, started: datetime, notes: str) -> str:
    by = {r.name: r for r in results}
    out = [
        "# Benchmarks",
        "",
        f"Written by `python bench/run_all.py{' --quick' if quick else ''}` (`make bench`) on {started:%Y-%m-%d %H:%M} "
        f"UTC: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}.",
        "",
        "Every figure is a ratio against a baseline measured in the same benchmark run, on the same machine at the "
        "same moment: the machine these ran on is shared with other work and its speed drifts from one minute to "
        "the next, so absolute times from different runs do not compare, and a single run's ratios are the point.",
        "",
        "## Against the targets",
        "",
        "| measure | now | target | |",
        "|---|---|---|---|",
    ]
    for measure, now, target, v in targets(by):
        out.append(f"| {measure} | {now} | {target} | {v} |")
    out += ["", "## Each benchmark", ""]
    for r in results:
        out += [f"### {r.name}", "", f"`{r.command(quick)}` — {r.outcome}, {r.seconds:.0f} s", "", "```",
                *r.lines[-14:], "```", ""]
    out += [NOTES, notes.strip(), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the suite)")
    args = parser.parse_args()
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < DISK_BYTES:
        sys.exit(f"not enough free disk: {free / 1024**3:.1f} GB free under {tempfile.gettempdir()}, 10 GB needed")
    notes = ""
    if args.out.exists() and NOTES in (text := args.out.read_text()):
        notes = text.split(NOTES, 1)[1]
    started = datetime.now(UTC)
    deadline = time.monotonic() + BUDGET_SECONDS
    results = benches()
    for bench in results:
        run(bench, args.quick, deadline)
    args.out.write_text(page(results, args.quick, started, notes))
    print(f"wrote {args.out} in {(datetime.now(UTC) - started).total_seconds() / 60:.1f} min")


if __name__ == "__main__":
    main()
