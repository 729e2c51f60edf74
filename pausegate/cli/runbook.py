"""``pausegate runbook``: check runbook files and publish their JSON Schema for editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from pausegate.errors import RunbookError
from pausegate.models.runbook import Runbook
from pausegate.runbook.loader import load_runbook

app = typer.Typer(help="Check runbooks and export their JSON Schema.", no_args_is_help=True)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def runbook_json_schema() -> str:
    """The Runbook model's JSON Schema as written to ``runbooks/runbook.schema.json``."""
    schema = Runbook.model_json_schema(by_alias=True, mode="validation")
    document = {"$schema": JSON_SCHEMA_DIALECT, **schema}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _console() -> Console:
    # Created per command so test runners that swap sys.stdout capture the output; soft wrap
    # keeps each problem on one line for tools that parse FILE:LINE:COL.
    return Console(soft_wrap=True, highlight=False)


def _summary(path: Path, runbook: Runbook) -> Text:
    policy = runbook.resume_policy
    datasets = ", ".join(
        f"{d.name} ({d.connection}: {d.schema_name}.{{{','.join(d.tables) or '*'}}})"
        for d in runbook.datasets
    )
    sources = ", ".join(f"{a.name} ({a.kind})" for a in runbook.audit_sources) or "none"
    text = Text()
    text.append(f"{path}", style="bold")
    text.append(": valid\n", style="green")
    text.append(f"  program        {runbook.program.id} ({runbook.program.name})\n")
    text.append(f"  datasets       {datasets}\n")
    text.append(f"  audit sources  {sources}\n")
    items = ", ".join(c.id for c in runbook.checklist)
    text.append(f"  checklist      {len(runbook.checklist)} items: {items}\n")
    text.append(f"  approvers      {policy.quorum} of {', '.join(policy.approver_roles)}")
    return text


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Runbook YAML files.", show_default=False)],
) -> None:
    """Check runbook files; print every problem as FILE:LINE:COL: field: message."""
    console = _console()
    failed = 0
    for path in files:
        try:
            runbook = load_runbook(path)
        except RunbookError as exc:
            failed += 1
            for problem in exc.problems:
                location, _, rest = problem.partition(": ")
                console.print(Text.assemble((location, "bold red"), ": ", rest))
            continue
        console.print(_summary(path, runbook))
    if failed:
        console.print(Text(f"{failed} of {len(files)} runbook(s) invalid", style="red"))
        raise typer.Exit(code=1)


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of standard output.")
    ] = None,
) -> None:
    """Print the JSON Schema of runbooks (keys as written in YAML), for editors and CI."""
    document = runbook_json_schema()
    if output is None:
        # Plain stdout: rich would re-wrap or colour the JSON.
        typer.echo(document, nl=False)
        return
    output.write_text(document, encoding="utf-8")
    _console().print(Text(f"wrote {output}"))
