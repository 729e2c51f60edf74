"""``approve`` and ``decommission``: approvers sign off on resuming, or vote to end the program."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pausegate.cli import views
from pausegate.cli.exits import EXIT_REFUSED, fail
from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import out, show
from pausegate.cli.session import connect
from pausegate.cli.signing import signed_approval

app = typer.Typer()


@app.command("approve")
def approve(
    program: ProgramArg,
    digest: Annotated[str | None, typer.Option(help="Digest reviewed (default: the current one in status).")] = None,
    role: Annotated[str | None, typer.Option(help="Approver role to act as, if you hold several.")] = None,
    comment: Annotated[str, typer.Option(help="A comment for the record.")] = "",
    ssh_key: Annotated[Path | None, typer.Option(
        "--ssh-key", help="Sign the approval with this enrolled SSH key (ssh-keygen -Y sign; an sk- key asks for "
        "a touch).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the current resume plan and review (signed with your enrolled SSH key, given --ssh-key)."""
    with connect(as_json) as client:
        envelope = None
        if digest is None or ssh_key is not None:
            view = client.status(program).model
            if digest is None:
                digest = view.approval_digest
            if not digest:
                fail(EXIT_REFUSED, "there is no plan to approve yet", as_json=as_json, error="no_plan")
            if not as_json:
                destructive = views.data_actions(view.plan.plan) if view.plan else None
                if destructive is not None:
                    out.print(destructive)
                out.say("approving digest ", digest)
            if ssh_key is not None:
                envelope = signed_approval(client, view, ssh_key, role, comment, as_json=as_json)
        show(client.approve(program, digest, role=role, comment=comment, envelope=envelope), as_json, views.receipt)


@app.command("decommission")
def decommission(
    program: ProgramArg,
    reason: Annotated[str, typer.Option(help="Why the program ends.")],
    role: Annotated[str | None, typer.Option(help="Approver role to vote as, if you hold several.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Vote to end the program for good."""
    with connect(as_json) as client:
        show(client.decommission(program, reason, role=role), as_json, views.receipt)
