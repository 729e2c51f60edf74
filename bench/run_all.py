"""Run every benchmark once, with sizes chosen for a 2-core machine, and write docs/benchmarks.md.

At most 30 minutes and 10 GB of disk: free space is checked first, each benchmark runs under its own
time limit (a benchmark that overruns is stopped and reported as such) and cleans up after itself.
Every ``bench/bench_*.py`` runs: those listed in ``benches()`` with the sizes given there, any other
with its own defaults. Each figure is a ratio against a baseline measured in the same benchmark run;
the page gives the command that reproduces it, and for every figure with a target the verdict (met /
NOT met / not measured) computed from the output the page embeds. Everything on the page is written
here from that output: the page is rewritten whole on every run, nothing on it is kept or typed in.

    PYTHONPATH=. python bench/run_all.py [--out docs/benchmarks.md] [--quick]

``--quick`` runs each benchmark at its smoke size (seconds to a minute each): a check that every
benchmark still runs against the product, not a measurement.
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
UNLISTED_LIMIT = 300.0  # seconds, for a benchmark benches() does not list yet


@dataclass
class Bench:
    name: str
    args: list[str]
    limit: float  # seconds
    quick: list[str] | None = None
    smoke: bool = True  # whether ``--quick`` runs it
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0
    outcome: str = "not run"

    def command(self, quick: bool) -> str:
        return " ".join(["PYTHONPATH=. python", *self.argv(quick)])

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


def numbers_after(line: str | None, marker: str) -> list[float]:
    """The comma-separated numbers after ``marker`` in ``line`` (a benchmark's per-run figures)."""
    if line is None or marker not in line:
        return []
    out = []
    for part in line[line.index(marker) + len(marker):].split(","):
        value = number_after(part, "")
        if value is not None:
            out.append(value)
    return out


def benches() -> list[Bench]:
    """Every benchmark with its full and smoke sizes; any ``bench_*.py`` not listed here runs at its defaults."""
    # at smoke size one contain run shows the benchmark runs against the product; the sizes differ only in N
    contain = [Bench(f"contain {n:,}", ["bench/bench_contain.py", "--agents", str(n), "--runs", "5"], 420,
                     ["--agents", "200", "--runs", "1"], smoke=n == 1_000)
               for n in (1_000, 100_000, 1_000_000)]
    listed = [
        *contain,
        Bench("concurrent", ["bench/bench_concurrent.py", "--programs", "50", "--agents", "1000"],
              480, ["--programs", "3", "--agents", "100"]),
        Bench("reviewers", ["bench/bench_reviewers.py"], 360,
              ["--sequential", "10", "--concurrent", "5", "--reviewers", "5", "--pauses", "2", "--actions", "20",
               "--flood", "50"]),
        Bench("recovery", ["bench/bench_recovery.py", "--rounds", "5"], 420, ["--rounds", "1"]),
        Bench("revoke", ["bench/bench_revoke.py", "--roles", "50000", "--tables", "200"], 480,
              ["--roles", "200", "--tables", "10"]),
        Bench("seal", ["bench/bench_seal.py", "--mb", "256", "--rounds", "3", "--trace-mb", "0"], 240,
              ["--mb", "16", "--rounds", "1", "--trace-mb", "0", "--pool-mb", "8"]),
        Bench("seal limits", ["bench/bench_seal_limits.py", "--mb", "256"], 120, ["--mb", "16"]),
        Bench("who saw what", ["bench/bench_who_saw_what.py", "--size-mb", "256", "--rounds", "3"], 240,
              ["--size-mb", "8", "--rounds", "1"]),
        Bench("console render", ["bench/bench_console_render.py", "--runs", "30"], 120,
              ["--runs", "3", "--warmup", "1"]),
        Bench("data actions", ["bench/bench_data_actions.py", "--rows", "2000000", "--rounds", "2"], 420,
              ["--rows", "10000", "--rounds", "1"]),
        Bench("codec", ["bench/bench_codec.py", "--rounds", "15", "--repeat", "20"], 120,
              ["--rounds", "2", "--repeat", "1"]),
        Bench("replicas", ["bench/bench_replicas.py", "--actions", "320", "--runs", "3"], 420,
              ["--actions", "16", "--runs", "1"]),
        Bench("copies", ["bench/bench_copies.py", "--size-mb", "256", "--copies", "100", "--rounds", "3"], 300,
              ["--smoke"]),
        Bench("origins", ["bench/bench_origins.py", "--size-mb", "256"], 240, ["--smoke"]),
        Bench("drill", ["bench/bench_drill.py", "--agents", "1000", "--rounds", "5"], 300, ["--smoke"]),
    ]
    scripts = {b.args[0] for b in listed}
    unlisted = [Bench(path.stem.removeprefix("bench_").replace("_", " "), [f"bench/{path.name}"], UNLISTED_LIMIT)
                for path in sorted((ROOT / "bench").glob("bench_*.py")) if f"bench/{path.name}" not in scripts]
    return [*listed, *unlisted]


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
                   if line.strip() and not any(f"[{level}" in line for level in ("debug", "info", "warn", "error"))
                   and not line.startswith("Temporal")]
    for line in bench.lines[-12:]:
        print(f"   {line}", flush=True)


Row = tuple[str, str, str, str]  # measure, figure (with its spread), target, verdict
NO_TARGET = ("(no target)", "")


def verdict(value: float | None, target: float, *, lower_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value <= target if lower_is_better else value >= target
    return "met" if ok else "NOT met"


def both(*verdicts: str) -> str:
    """Met only when every part is met; not measured when any part is missing."""
    if "not measured" in verdicts:
        return "not measured"
    return "met" if all(v == "met" for v in verdicts) else "NOT met"


def shown(value: float | None, unit: str = "x") -> str:
    return "not measured" if value is None else f"{value:g}{unit}"


def runs(values: list[float], unit: str = "s") -> str:
    """Each run's figure, for the spread beside a median."""
    return f" (runs: {', '.join(f'{v:g}' for v in values)} {unit})" if values else ""


def contain_rows(b: dict[str, Bench]) -> list[Row]:
    rows: list[Row] = []
    big = b["contain 1,000,000"]
    ratio = number_after(big.find("baseline (same activities"), "; ratio")
    events = numbers_after(big.find("history events at containment"), ":")
    worst_events = max(events) if events else None
    spread = (runs(numbers_after(big.find("time to contain (client"), ", s:"))
              + runs(numbers_after(big.find("baseline (every step"), ", s:")).replace("runs:", "baseline runs:"))
    rows.append(("time to contain, 1,000,000 agents: fully contained (client-timed) / the same activities "
                 "without a workflow; history events",
                 f"{shown(ratio)} (median){spread}; {shown(worst_events, '')} events (most of any run)",
                 "<= 1.15x, <= 100 events",
                 both(verdict(ratio, 1.15), verdict(worst_events, 100))))
    for n in ("1,000", "100,000", "1,000,000"):
        c = b[f"contain {n}"]
        figures = " / ".join(shown(number_after(c.find(f"{what}: median"), "; ratio"))
                             for what in ("switch off", "access gone", "access verified"))
        rows.append((f"switch off / access gone / access verified, {n} agents, against the baseline's (medians)",
                     figures, *NO_TARGET))
    overheads = [number_after(b[f"contain {n}"].find("orchestration overhead"), "overhead:")
                 for n in ("1,000", "100,000", "1,000,000")]
    known = [o for o in overheads if o is not None]
    rows.append(("orchestration overhead at 1,000 / 100,000 / 1,000,000 agents (ms, medians)",
                 " / ".join("not measured" if o is None else f"{o:.0f}" for o in overheads), "<= 100 ms, flat",
                 verdict(max(known) if len(known) == len(overheads) else None, 100)))
    for n in ("100,000", "1,000,000"):
        line = b[f"contain {n}"].find("peak RSS MiB")
        rows.append((f"peak RSS, urgent worker / proof worker / workflows and client / fleet, {n} agents "
                     "(MiB, each run)",
                     line.split(":", 1)[1].strip() if line else "not measured", *NO_TARGET))
    return rows


def concurrent_rows(cc: Bench) -> list[Row]:
    rows: list[Row] = []
    for what in ("switch off", "access gone"):
        line = cc.find(f"{what} at once, s:")
        floor = number_after(line, f"{what} worst / floor =")
        alone = number_after(line, f"{what} worst / alone =")
        rows.append((f"concurrent pauses (50 x 1,000): {what}, worst / the floor's worst", shown(floor), "<= 1.5x",
                     verdict(floor, 1.5)))
        rows.append((f"concurrent pauses (50 x 1,000): {what}, worst / alone (median of 50 one after another)",
                     shown(alone), "<= 3x", verdict(alone, 3)))
    last = number_after(cc.find("last / one after another"), "last / one after another =")
    rows.append(("concurrent pauses: last fully contained / the same pauses one after another (measured)",
                 shown(last), "<= 1x", verdict(last, 1)))
    stuck = number_after(cc.find("stuck:"), "stuck:")
    rows.append(("concurrent pauses: stuck", "not measured" if stuck is None else f"{int(stuck)}", "0",
                 verdict(stuck, 0)))
    return rows


def reviewer_rows(rv: Bench) -> list[Row]:
    seq = number_after(rv.find("sequential amends"), "bare p99 =")
    burst = number_after(rv.find("concurrent amends on one pause"), "bare p99 =")
    once = rv.find("applied exactly once")
    flood = number_after(rv.find("during flood / usual"), "during flood / usual =")
    return [
        ("reviewer actions: a reviewer's median amend during 1,000 requests of another person / without",
         shown(flood), "<= 2x", verdict(flood, 2)),
        ("reviewer actions: sequential p99 / bare update p99", shown(seq), "<= 2x", verdict(seq, 2)),
        ("reviewer actions: 100 concurrent on one pause, p99 / bare update p99", shown(burst), "<= 20x",
         verdict(burst, 20)),
        ("reviewer actions: 1,000 from 100 reviewers across 10 pauses, applied exactly once",
         (once or "not measured").split(":", 1)[-1].strip(), "yes",
         "met" if once and once.endswith("yes") else ("not measured" if once is None else "NOT met")),
    ]


def seal_rows(seal: Bench, who: Bench) -> list[Row]:
    rows: list[Row] = []
    summary = seal.find("summary:")
    for label in ("blocks", "plain", "dicts"):
        value = number_after(summary, f"{label} ") if summary else None
        rows.append((f"sealing ({label}) / plain sha256 throughput (median of rounds)", shown(value, ""), ">= 0.7",
                     verdict(value, 0.7, lower_is_better=False)))
    line = who.find("sealing ")
    value = number_after(line, "; ratio")
    spread = f" (rounds {line.split('(rounds', 1)[1].split(';')[0].strip()})" if line and "(rounds" in line else ""
    rows.append(("sealing who saw what's kept lines / plain sha256 (median)", f"{shown(value, '')}{spread}",
                 ">= 0.7", verdict(value, 0.7, lower_is_better=False)))
    ratio = number_after(who.find("ratio to baseline"), "baseline:")
    rows.append(("who saw what / read + parse every line", shown(ratio, ""), ">= 0.5",
                 verdict(ratio, 0.5, lower_is_better=False)))
    return rows


def other_rows(b: dict[str, Bench]) -> list[Row]:
    rows: list[Row] = []
    rec = b["recovery"]
    ratio = number_after(rec.find("recovery under load / quiet"), "quiet =")
    quiet = numbers_after(rec.find("recovery from kill -9"), ", s:")
    loaded = numbers_after(rec.find("recovery with two CPU-bound"), ", s:")
    rows.append(("crash recovery, kill -9 to contained, with two CPU-bound processes / without (medians)",
                 f"{shown(ratio)}{runs(loaded).replace('runs:', 'loaded:')}{runs(quiet).replace('runs:', 'quiet:')}",
                 "<= 1.5x", verdict(ratio, 1.5)))
    rk = b["revoke"]
    for what in ("access gone / plain REVOKEs", "verified / plain REVOKEs"):
        value = number_after(rk.find(what), "=")
        rows.append((f"revoke at 50,000 roles, 200 tables: {what}", shown(value), "<= 2x", verdict(value, 2)))
    cp = b["copies"]
    finding = number_after(cp.find("ratio to baseline"), "baseline:")
    rows.append(("finding copies / read + parse every line", shown(finding, ""), ">= 0.5",
                 verdict(finding, 0.5, lower_is_better=False)))
    held = number_after(cp.find("quarantining"), "; ratio")
    rows.append(("quarantining 100 copies / the same ALTERs from a plain script", shown(held), "<= 2x",
                 verdict(held, 2)))
    for what in ("switch off", "access gone"):
        drill = number_after(b["drill"].find(f"{what}: drill / pause"), "scope =")
        rows.append((f"drill: {what} seen by the prober / the same for a pause of the same scope (medians)",
                     shown(drill), "<= 1.2x", verdict(drill, 1.2)))
    render = number_after(b["console render"].find("render / json"), "=")
    rows.append(("console page render / API JSON (medians)", shown(render), "<= 2x", verdict(render, 2)))
    da = b["data actions"]
    for what in ("null", "purge"):
        took = number_after(da.find(f"{what:<5} time"), "plain =")
        wait = number_after(da.find(f"{what:<5} writer's wait"), "plain =")
        rows.append((f"data action {what}: time / plain script; the writer's longest wait / plain script",
                     f"{shown(took)}; {shown(wait)}", "<= 1.2x; <= 1.2x", both(verdict(took, 1.2), verdict(wait, 1.2))))
    codec = number_after(b["codec"].find("pydantic + history codec"), "ratio")
    rows.append(("history codec: encode + decode per payload / pydantic alone (medians)", shown(codec), *NO_TARGET))
    for line in [ln for ln in b["replicas"].lines if "ratio" in ln and "actions/s" in ln]:
        name = line.strip()[:22].strip()  # the benchmark pads the configuration's name to 22
        rows.append((f"reviewer actions through the API, {name}: time / one process with files (median)",
                     shown(number_after(line, "ratio")), *NO_TARGET))
    return rows


def targets(b: dict[str, Bench]) -> list[Row]:
    """(measure, figure, target, verdict) rows, from the benchmarks' own output."""
    return [*contain_rows(b), *concurrent_rows(b["concurrent"]), *reviewer_rows(b["reviewers"]),
            *seal_rows(b["seal"], b["who saw what"]), *other_rows(b)]


def page(results: list[Bench], quick: bool, started: datetime) -> str:
    by = {r.name: r for r in results}
    rows = targets(by)

    def count(verdict: str) -> int:
        return sum(1 for *_, got in rows if got.startswith(verdict))

    out = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`PYTHONPATH=. python bench/run_all.py{' --quick' if quick else ''}`) on "
        f"{started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.machine()}. Every line of this page comes from that run; it is rewritten whole each time.",
        "",
        *(["**Smoke sizes (`--quick`): these figures say that each benchmark runs, not what the product does.**",
           ""] if quick else []),
        "Every figure is a ratio against a baseline measured in the same benchmark run, on the same machine at the "
        "same moment: the machine these ran on is shared with other work and its speed drifts from one minute to "
        "the next, so absolute times from different runs do not compare, and a single run's ratios are the point. "
        "Medians are given with each run's figure where the benchmark prints them.",
        "",
        "## Against the targets",
        "",
        f"{count('met')} met, {count('NOT met')} not met, {count('not measured')} not measured.",
        "",
        "| measure | now | target | verdict |",
        "|---|---|---|---|",
    ]
    for measure, now, target, v in rows:
        out.append(f"| {measure} | {now} | {target} | {v} |")
    out += ["", "## Each benchmark", ""]
    for r in results:
        out += [f"### {r.name}", "", f"`{r.command(quick)}` — {r.outcome}, {r.seconds:.0f} s", "", "```",
                *r.lines[-14:], "```", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: every benchmark runs, nothing is measured")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this benchmark (repeatable; the others are listed as not run)")
    args = parser.parse_args()
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if not args.quick and free < DISK_BYTES:
        sys.exit(f"not enough free disk: {free / 1024**3:.1f} GB free under {tempfile.gettempdir()}, 10 GB needed")
    started = datetime.now(UTC)
    deadline = time.monotonic() + BUDGET_SECONDS
    results = benches()
    chosen = [b for b in results if (not args.only or b.name in args.only) and (b.smoke or not args.quick)]
    for bench in chosen:
        run(bench, args.quick, deadline)
    args.out.write_text(page(results, args.quick, started))
    print(f"wrote {args.out} in {(datetime.now(UTC) - started).total_seconds() / 60:.1f} min")
    failed = [b.name for b in chosen if b.outcome != "ok"]
    if failed:
        sys.exit(f"did not finish: {', '.join(failed)}")


if __name__ == "__main__":
    main()
