"""``checklist``, ``complete``, ``plan`` and ``reject``: the security review of a contained pause."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from pausegate.cli import views
from pausegate.cli.exits import EXIT_REFUSED, EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.origins_view import derived_cause
from pausegate.cli.output import show
from pausegate.cli.session import connect
from pausegate.cli.signing import signed_decision

app = typer.Typer()

_SHA = re.compile(r"^[0-9a-f]{64}$")


def parse_evidence(values: list[str]) -> list[dict[str, Any]]:
    """``NAME=URI`` or ``NAME=URI@SHA256`` (the digest is recognised only as 64 hex digits)."""
    attached = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise typer.BadParameter(f"{value!r}: expected NAME=URI or NAME=URI@SHA256")
        uri, at, digest = rest.rpartition("@")
        item: dict[str, Any] = {"name": name, "uri": rest}
        if at and _SHA.fullmatch(digest):
            item = {"name": name, "uri": uri, "sha256": digest}
        attached.append(item)
    return attached


@app.command("checklist")
def checklist(
    program: ProgramArg,
    scope: Annotated[bool, typer.Option(help="With the derived cause beside the root-cause item, read from the "
                                        "sealed origin document (review roles only; --json: the pause as "
                                        "status --scope answers).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the review checklist."""
    with connect(as_json) as client:
        if scope:
            show(client.status(program, scope=True), as_json,
                 lambda view: views.checklist(view.checklist, derived_cause(view)))
        else:
            show(client.checklist(program), as_json, views.checklist)


@app.command("complete")
def complete(
    program: ProgramArg,
    item: Annotated[str, typer.Argument(help="Checklist item id.")],
    evidence: Annotated[
        list[str] | None,
        typer.Option("--evidence", "-e", help="NAME=URI or NAME=URI@SHA256; repeat for each required piece."),
    ] = None,
    note: Annotated[str, typer.Option(help="A note for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Complete (or amend) a checklist item with its evidence."""
    attached = parse_evidence(evidence or [])
    with connect(as_json) as client:
        show(client.complete(program, item, attached, note), as_json, views.receipt)


@app.command("plan")
def plan(
    program: ProgramArg,
    plan_file: Annotated[Path, typer.Argument(help="Resume plan as YAML or JSON.", exists=True, dir_okay=False)],
    as_json: JsonOpt = False,
) -> None:
    """Propose (or replace) the resume plan from a file; earlier approvals are void."""
    try:
        document = yaml.safe_load(plan_file.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        fail(EXIT_USAGE, f"{plan_file}: not a readable YAML or JSON plan: {exc}", as_json=as_json)
    if not isinstance(document, dict):
        fail(EXIT_USAGE, f"{plan_file}: a plan is a mapping (agents, grants, conditions, summary)", as_json=as_json)
    with connect(as_json) as client:
        show(client.propose(program, document), as_json, views.receipt)


@app.command("reject")
def reject(
    program: ProgramArg,
    reason: Annotated[str, typer.Option(help="Why.")],
    role: Annotated[str | None, typer.Option(help="Role to sign the rejection as, if you hold several.")] = None,
    ssh_key: Annotated[Path | None, typer.Option(
        "--ssh-key", help="Sign the rejection with this enrolled SSH key (required where the runbook requires "
        "signed approvals).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the current resume plan (signed with your enrolled SSH key, given --ssh-key)."""
    with connect(as_json) as client:
        envelope = None
        if ssh_key is not None:
            view = client.status(program).model
            if view.plan is None:
                fail(EXIT_REFUSED, "there is no plan to reject", as_json=as_json, error="no_plan")
            envelope, role = signed_decision(client, view, ssh_key, role, reason, "reject", as_json=as_json)
        show(client.reject(program, reason, role=role, envelope=envelope), as_json, views.receipt)
