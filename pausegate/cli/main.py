"""The ``pausegate`` command.

Every module of ``pausegate.cli`` that holds commands has its own ``app = typer.Typer()`` and
declares them with ``@app.command("name")``. Here they are mounted: without a name, a module's
commands become top-level commands (``pausegate pause``); with one, a group (``pausegate runbook``).
"""

from __future__ import annotations

import os
import sys

import typer

from pausegate.cli import (
    break_glass,
    containment,
    drill,
    evidence,
    keys,
    pauses,
    refusals,
    review,
    runbook,
    signoff,
    stack,
    users,
    watch,
)

app = typer.Typer(
    help="Pause a data-collection program, prove the pause, resume it only after a signed-off review.",
    no_args_is_help=True,
)
for commands in (stack, containment, pauses, review, signoff, refusals, drill):
    app.add_typer(commands.app)
app.add_typer(runbook.app, name="runbook")
app.add_typer(evidence.app, name="evidence")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(watch.app, name="watch")
app.add_typer(break_glass.app, name="break-glass")



def main() -> None:
    """Run the command. A short command that talked to Temporal (``evidence audit``, ``evidence verify``)
    leaves without the interpreter's finalization once its output is written: the SDK's core threads
    can abort the process there (PyGILState_Release), turning a verdict's exit code into a crash."""
    try:
        app()
    except SystemExit as exc:
        # Looked up, not imported: a command that never loaded the module never connected.
        record = sys.modules.get("pausegate.temporal.recorded_evidence")
        if record is None or not record.CONNECTED:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
