"""The ``pausegate`` command."""

from __future__ import annotations

import typer

from pausegate.cli import evidence, operator, runbook, stack

app = typer.Typer(
    help="Pause a data-collection program, prove the pause, resume it only after a signed-off review.",
    no_args_is_help=True,
)
app.add_typer(runbook.app, name="runbook")
app.add_typer(evidence.app, name="evidence")
app.command()(stack.up)
app.command()(stack.worker)
app.command()(stack.api)
operator.register(app)

if __name__ == "__main__":
    app()
