"""The ``pausegate`` command.

Every module of ``pausegate.cli`` that holds commands has its own ``app = typer.Typer()`` and
declares them with ``@app.command("name")``. Here they are mounted: without a name, a module's
commands become top-level commands (``pausegate pause``); with one, a group (``pausegate runbook``).
"""

from __future__ import annotations

import typer

from pausegate.cli import containment, evidence, pauses, refusals, review, runbook, signoff, stack, users

app = typer.Typer(
    help="Pause a data-collection program, prove the pause, resume it only after a signed-off review.",
    no_args_is_help=True,
)
for commands in (stack, containment, pauses, review, signoff, refusals):
    app.add_typer(commands.app)
app.add_typer(runbook.app, name="runbook")
app.add_typer(evidence.app, name="evidence")
app.add_typer(users.app, name="users")

if __name__ == "__main__":
    app()
