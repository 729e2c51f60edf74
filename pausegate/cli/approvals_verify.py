"""``pausegate evidence verify-approvals``: a pause's approvals checked offline, from a copy of its evidence
and the enrollment log; no server key, no network (``pausegate.approvals.offline``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pausegate.approvals.offline import verify_report
from pausegate.cli.exits import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from pausegate.cli.output import clean

MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_SEARCHED = 10_000

ReportArg = Annotated[Path, typer.Argument(help="The pause's report.json, or an evidence directory with one report.")]
EnrollmentOpt = Annotated[Path, typer.Option("--enrollment", help="The enrollment log (keys-log.jsonl), or a copy.")]


def _report_path(path: Path) -> Path | str:
    if path.is_file():
        return path
    if not path.is_dir():
        return f"{path}: no such file or directory"
    found: list[Path] = []
    for n, candidate in enumerate(path.rglob("report.json")):
        if n >= MAX_SEARCHED:
            break
        found.append(candidate)
    if len(found) != 1:
        return f"{path}: holds {len(found)} reports; name the pause's report.json"
    return found[0]


def verify_approvals(report: ReportArg, enrollment: EnrollmentOpt,
                     as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check offline who approved a pause's resume: each signature against its pinned, enrolled key."""
    located = _report_path(report)
    if isinstance(located, str):
        typer.echo(clean(located), err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        if located.stat().st_size > MAX_REPORT_BYTES:
            raise ValueError(f"larger than {MAX_REPORT_BYTES} bytes")
        document = json.loads(located.read_bytes())
        lines = enrollment.read_bytes().splitlines()
    except (OSError, ValueError) as exc:
        typer.echo(clean(f"cannot read {located} or {enrollment}: {exc}"), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    findings = verify_report(document, [line for line in lines if line.strip()], log_where=str(enrollment))
    if as_json:
        typer.echo(json.dumps({"ok": findings.ok, "approvals": findings.approvals, "problems": findings.problems,
                               "signed_by": sorted(findings.signed_holders)}))
    else:
        typer.echo(clean(f"{'OK' if findings.ok else 'FAILED'} {located}"))
        for line in findings.approvals:
            typer.echo(clean(f"  {line}"))
        for problem in findings.problems:
            typer.echo(clean(f"  problem: {problem}"))
    raise typer.Exit(EXIT_OK if findings.ok else EXIT_REFUSED)
