"""The fault report: which faults the fault tests inject, how often, and what came of it.

    python -m tests.support.fault_report [--output docs/fault-report.md] [--results FILE [--junit XML]]
                                         [-- PYTEST ARGS]

runs ``tests/faults`` and the hostile-caller tests (``HOSTILE``) with ``PAUSEGATE_FAULT_RESULTS``
naming a results file; each fault test
appends one JSON line per scenario (``record_result``) after its assertions passed, so a line is
a proven outcome. The command renders those lines and the tests' pass/fail into Markdown.
``--results FILE`` renders an existing results file without running the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_ENV = "PAUSEGATE_FAULT_RESULTS"
DEFAULT_OUTPUT = Path("docs/fault-report.md")
HOSTILE = (
    "tests/api/test_api_refusal_flood.py", "tests/api/test_api_fair_queue.py", "tests/api/test_oidc_keys.py",
    "tests/api/test_api_scope_gate.py", "tests/cli/test_cli_hostile_text.py", "tests/api/test_users.py",
    "tests/connectors/test_secrets.py", "tests/api/test_forged_state.py", "tests/workflows/test_evidence_squatting.py",
    "tests/workflows/test_replayed_payloads.py", "tests/workflows/test_consent_provenance.py",
    "tests/connectors/test_data_actions_lock.py", "tests/workflows/test_watch_fails_closed.py",
    "tests/evidence/test_pglog_giant_line.py", "tests/cli/test_cli_retry_after.py", "tests/auth/test_group_roles.py",
    "tests/api/test_api_redaction.py", "tests/console/test_console_visibility.py", "tests/evidence/test_squatting.py",
    "tests/evidence/test_s3_policy.py", "tests/connectors/test_data_actions_targets.py",
    "tests/connectors/test_break_glass_postgres.py",
    "tests/evidence/test_exposure_budget.py", "tests/connectors/test_postgres_consent.py",
    "tests/analysis/test_origins.py", "tests/approvals/test_forgeries.py", "tests/approvals/test_signed_pause.py",
    "tests/console/test_console_origins.py", "tests/approvals/test_signed_rejections.py",
    "tests/drill/test_drill_prober_seal.py",
)


def record_result(fault: str, scenario: str, *, injected: int, outcome: str, **figures: Any) -> None:
    """Append one proven outcome to the results file named by ``PAUSEGATE_FAULT_RESULTS`` (if set)."""
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    line = {"fault": fault, "scenario": scenario, "injected": injected, "outcome": outcome, "figures": figures}
    with Path(target).open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, default=str) + "\n")


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_fault_test(test_id: str) -> bool:
    """Whether a JUnit test id (``module.path[.Class]::name``) is one of the tests this report runs."""
    module = test_id.partition("::")[0]
    hostile = {h.removesuffix(".py").replace("/", ".") for h in HOSTILE}
    return module.startswith("tests.faults.") or any(module == h or module.startswith(h + ".") for h in hostile)


def read_junit(path: Path) -> list[tuple[str, str, str]]:
    """(test id, outcome, message) of every test case in a JUnit XML file."""
    if not path.exists():
        return []
    out: list[tuple[str, str, str]] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                message = (node.get("message") or "").splitlines()[0][:200] if node.get("message") else ""
        out.append((name, outcome, message))
    return out


def _figures(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())


def render(results: list[dict[str, Any]], tests: list[tuple[str, str, str]], *, command: str) -> str:
    """The report as Markdown."""
    by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_fault[r["fault"]].append(r)
    lines = [
        "# Fault report",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `{command}`.",
        "A row is written once a scenario's assertions on the counted effects (at the reference fleet and in",
        "PostgreSQL) and on the pause's end state have passed. A scenario that failed those has no row. A",
        "timing limit checked after the row is written (recovery after a crash) is stated in the outcome.",
        "Every failing test is listed under *Tests* with its failure.",
        "",
        "## Faults",
        "",
        "| Fault | Scenarios | Times injected | Outcome |",
        "|---|---:|---:|---|",
    ]
    for fault, rows in sorted(by_fault.items()):
        outcomes = sorted({r["outcome"] for r in rows})
        lines.append(f"| {fault} | {len(rows)} | {sum(int(r['injected']) for r in rows)} | {'; '.join(outcomes)} |")
    lines += ["", "## Scenarios", "", "| Fault | Scenario | Injected | Outcome | Figures |", "|---|---|---:|---|---|"]
    for r in results:
        lines.append(f"| {r['fault']} | {r['scenario']} | {r['injected']} | {r['outcome']} | "
                     f"{_figures(r.get('figures', {}))} |")
    if tests:
        passed = sum(1 for _, o, _ in tests if o == "passed")
        failed = [t for t in tests if t[1] in ("FAILED", "ERROR")]
        lines += ["", "## Tests", "", f"{passed} passed, {len(failed)} failed, "
                  f"{sum(1 for _, o, _ in tests if o == 'skipped')} skipped.", ""]
        for name, outcome, message in tests:
            if outcome != "passed":
                lines.append(f"- {outcome} `{name}`" + (f": {message}" if message else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fault_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--results", type=Path, default=None, help="Render this results file; run no tests.")
    parser.add_argument("--junit", type=Path, default=None,
                        help="With --results: the JUnit XML of the same run (the whole suite run with "
                        f"{RESULTS_ENV} set, say); its fault and hostile-caller tests are listed.")
    parser.add_argument("pytest_args", nargs="*", help="Extra pytest arguments (after --).")
    args = parser.parse_args(argv)
    command = "python -m tests.support.fault_report"
    if args.results is not None:
        results = read_results(args.results)
        tests = [t for t in read_junit(args.junit) if is_fault_test(t[0])] if args.junit is not None else []
        code = 0
    else:
        with tempfile.TemporaryDirectory(prefix="pausegate-faults-") as tmp:
            results_file, junit = Path(tmp) / "results.jsonl", Path(tmp) / "junit.xml"
            env = {**os.environ, RESULTS_ENV: str(results_file)}
            code = subprocess.call(
                [sys.executable, "-m", "pytest", "tests/faults", *HOSTILE, "-p", "no:cacheprovider", "-q",
                 f"--junitxml={junit}", *args.pytest_args],
                env=env,
            )
            results, tests = read_results(results_file), read_junit(junit)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results, tests, command=command), encoding="utf-8")
    print(f"wrote {args.output}: {len(results)} scenarios")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
