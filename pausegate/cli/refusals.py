"""``refusals``: the API's log of refusals that no pause's timeline holds."""

from __future__ import annotations

from typing import Annotated

import typer

from pausegate.cli import views
from pausegate.cli.exits import EXIT_REFUSED
from pausegate.cli.options import JsonOpt
from pausegate.cli.output import show
from pausegate.cli.session import connect

app = typer.Typer()


@app.command("refusals")
def refusals(
    program: Annotated[str | None, typer.Option(help="Only refusals on this program.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The newest this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Refusals no open pause could hold in its timeline (admin role); exit 1 if their chain is broken."""
    with connect(as_json) as client:
        log = client.refusals(program=program, limit=limit)
        show(log, as_json, views.refusals)
        if log.model.chain_problems:
            raise typer.Exit(EXIT_REFUSED)
