"""``break-glass``: ask for read access during a pause, approve it, return it, list the grants.

A request makes a random password on this machine and sends only its SCRAM verifier: the password
is shown here once and goes nowhere else (``--no-password``: the database authenticates the holder
another way, e.g. a client certificate).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table

from pausegate.cli import views
from pausegate.cli.api_client import PausegateClient
from pausegate.cli.exits import EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import add_row, line, out, show, table, when
from pausegate.cli.session import connect
from pausegate.models.break_glass import BreakGlassView, Grant, StandingException, scram_verifier

app = typer.Typer(help="Break-glass access during a pause: requested, time-limited, recorded, reviewed.")
GrantArg = Annotated[str, typer.Argument(help="The grant's id, as `break-glass list` shows it (g1, g2, ...).")]
MAX_TABLE_SPEC = 2000


def parse_table(spec: str) -> dict[str, Any]:
    """``table`` or ``table:col,col`` (names are checked by the API's models)."""
    if len(spec) > MAX_TABLE_SPEC:
        raise ValueError("table spec too long")
    name, _, columns = spec.partition(":")
    return {"table": name, "columns": [c for c in columns.split(",") if c] if columns else []}


@app.command("request")
def request(
    program: ProgramArg,
    dataset: Annotated[str, typer.Option(help="The paused dataset (as in the runbook).")],
    reason: Annotated[str, typer.Option(help="Why (goes into the timeline and the review).")],
    table_: Annotated[list[str] | None, typer.Option("--table", help="TABLE or TABLE:COL,COL; repeat.")] = None,
    copy: Annotated[list[str] | None, typer.Option("--copy", help="A quarantined copy's id (status --scope).")] = None,
    minutes: Annotated[float, typer.Option(help="How long, at most the runbook's maximum.", min=0.02)] = 30,
    emergency: Annotated[bool, typer.Option(help="Start now without approval (where the runbook allows).")] = False,
    password: Annotated[bool, typer.Option(help="Make a password (its verifier is sent, never it).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Ask for read access to tables (or columns) of PROGRAM's paused dataset, or to copies it quarantined."""
    try:
        tables = [parse_table(t) for t in table_ or []]
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc), as_json=as_json, error="usage")
    secret = secrets.token_urlsafe(24) if password else None
    body: dict[str, Any] = {
        "dataset": dataset, "tables": tables, "copies": copy or [], "reason": reason, "emergency": emergency,
        "duration": f"PT{timedelta(minutes=minutes).total_seconds():.0f}S",
        "scram_verifier": scram_verifier(secret, os.urandom(16)) if secret else None,
    }
    with connect(as_json) as client:
        reply = client.request_break_glass(program, body)
        if as_json:
            show(reply, as_json, views.receipt)
            return
        show(reply, False, views.receipt)
        if secret is not None:
            out.say("password (shown once, sent nowhere): ", (secret, "bold"))


@app.command("approve")
def approve(program: ProgramArg, grant: GrantArg, as_json: JsonOpt = False) -> None:
    """Start a requested grant of PROGRAM (an approver role; never the holder)."""
    with connect(as_json) as client:
        show(client.approve_break_glass(program, grant), as_json, views.receipt)


@app.command("end")
def end(
    program: ProgramArg,
    grant: GrantArg,
    reason: Annotated[str, typer.Option(help="Why it ends early.")] = "returned early",
    as_json: JsonOpt = False,
) -> None:
    """Return a grant of PROGRAM before its end (its holder, or the commander)."""
    with connect(as_json) as client:
        show(client.end_break_glass(program, grant, reason), as_json, views.receipt)


def grants_table(grants: list[Grant]) -> Table:
    made = table(line("break-glass grants"),
                 ("id", "holder", "tables", "status", "until", "statements", "reads", "reason"))
    for g in grants:
        closed = g.closed
        add_row(made, g.id, g.holder, ", ".join(t.table for t in g.tables), g.status, when(g.ends_at),
                "—" if closed is None else str(closed.statements), "—" if closed is None else str(closed.reads),
                g.reason)
    return made


def standing_table(standing: list[StandingException]) -> Table:
    made = table(line("standing exceptions (the runbook's static break-glass roles)"),
                 ("dataset", "role", "reads in the window", "refused", "tables read"))
    for s in standing:
        add_row(made, s.dataset, s.role, "not derived yet" if s.reads is None else str(s.reads), str(s.failed),
                ", ".join(s.objects) or "—")
    return made


def view(answer: BreakGlassView) -> Group:
    return Group(grants_table(answer.grants), standing_table(answer.standing))


def beside_status(client: PausegateClient, program: str) -> None:
    """After ``status``: the grants and the standing exceptions, for those who may read them."""
    answer = client.break_glass(program).model
    if answer.grants or answer.standing:
        out.print(view(answer))


@app.command("list")
def list_grants(program: ProgramArg, as_json: JsonOpt = False) -> None:
    """The grants of PROGRAM's pause, and the standing break-glass roles with their reads (review roles)."""
    with connect(as_json) as client:
        show(client.break_glass(program), as_json, view)
