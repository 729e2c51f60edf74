"""``watch status`` and ``watch withdraw-consent``: the watch of a resumed program, and an employee's
consent withdrawn through it (the runbook's consent roles, e.g. privacy-officer)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import line, show, when
from pausegate.cli.session import connect
from pausegate.models.watch import WatchReceiptOut, WatchState

app = typer.Typer(help="The watch of a resumed program: its checks, drift, consent withdrawn.")


def _state(watch: WatchState) -> Text:
    text = line((watch.program, "bold"), ": watch ", watch.status, f" until {when(watch.ends_at)}",
                f" · {watch.checks} checks, every {watch.interval_seconds:g} s")
    if watch.last_check is not None:
        problems = watch.last_check.problems
        text.append_text(line("\n   last check ", when(watch.last_check_at), ": ",
                              ("conditions hold", "green") if not problems else ("; ".join(problems), "red")))
    if watch.drift:
        text.append_text(line("\n   drift: ", (watch.drift, "red"), "; switch pulled again: ", watch.repaused or ""))
    if watch.withdrawals_total:
        text.append_text(line(f"\n   consent withdrawn: {watch.withdrawals_total} "
                              f"(latest: {', '.join(w.employee for w in watch.withdrawals[-5:])})"))
    return text


def _receipt(answer: WatchReceiptOut) -> Text:
    return line(("ok", "green"), " ", answer.message, " — watch is ", answer.status, " (as ", answer.actor, ")")


@app.command("status")
def status(program: ProgramArg, as_json: JsonOpt = False) -> None:
    """Show the watch of PROGRAM: checks, the last one's outcome, drift, consent withdrawn."""
    with connect(as_json) as client:
        show(client.watch(program), as_json, _state)


@app.command("withdraw-consent")
def withdraw_consent(
    program: ProgramArg,
    employee: Annotated[str, typer.Argument(help="The employee, as the fleet names the agents' employee.")],
    reason: Annotated[str, typer.Option(help="Why (goes into the watch's record).")],
    as_json: JsonOpt = False,
) -> None:
    """Record that EMPLOYEE withdrew consent: the watch of PROGRAM halts their agents."""
    with connect(as_json) as client:
        show(client.withdraw_consent(program, employee, reason), as_json, _receipt)
