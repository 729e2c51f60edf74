"""``status``, ``pauses`` and ``report``: reading pauses."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pausegate.cli import views
from pausegate.cli.exits import EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import clean, emit_json, show
from pausegate.cli.session import connect

app = typer.Typer()


@app.command("status")
def status(
    program: ProgramArg,
    scope: Annotated[bool, typer.Option(help="Include the recorded exposure scope (review roles only).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a pause: state, containment, checklist, plan, approvals, timeline."""
    with connect(as_json) as client:
        show(client.status(program, scope=scope), as_json, views.status)


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
