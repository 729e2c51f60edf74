"""``status``, ``pauses``, ``report`` and ``data-subjects``: reading pauses."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pausegate.cli import break_glass, views
from pausegate.cli.exits import EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import clean, emit_json, out, show
from pausegate.cli.session import connect

app = typer.Typer()


@app.command("status")
def status(
    program: ProgramArg,
    scope: Annotated[bool, typer.Option(help="Include the recorded exposure scope (review roles only).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a pause: state, containment, checklist, plan, approvals, break-glass grants, timeline."""
    with connect(as_json) as client:
        show(client.status(program, scope=scope), as_json, views.status)
        if not as_json:
            break_glass.beside_status(client, program)


@app.command("pauses")
def pauses(as_json: JsonOpt = False) -> None:
    """List the latest pause of every program."""
    with connect(as_json) as client:
        show(client.pauses(), as_json, views.pauses)


@app.command("report")
def report(
    program: ProgramArg,
    format: Annotated[str, typer.Option("--format", help="markdown or json.")] = "markdown",
) -> None:
    """Print the final report of a closed pause."""
    if format not in ("markdown", "json"):
        fail(EXIT_USAGE, "--format is markdown or json", as_json=False, error="usage")
    with connect(format == "json") as client:
        document = client.report(program, format=format)
    if format == "markdown":
        # The report quotes people's text: it prints as written, control characters shown, not obeyed.
        sys.stdout.write(clean(document))
    else:
        emit_json(document)


@app.command("data-subjects")
def data_subjects(
    program: ProgramArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (created owner-only).")],
) -> None:
    """Save whose data was readable in the exposure window, for the employee notice (review roles only)."""
    with connect(False) as client:
        document = client.data_subjects(program)
    # The list names people: it goes to an owner-only file, never to a shared terminal or its scrollback.
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(EXIT_USAGE, f"{output} exists; choose a new file", as_json=False, error="usage")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)
    count = len(document.get("subjects", [])) if isinstance(document, dict) else 0
    out.say(f"{count} data subjects written to ", str(output), " (mode 0600)")
