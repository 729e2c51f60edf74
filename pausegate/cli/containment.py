"""``pause``, ``waive``, ``retry-step`` and ``waive-step``: the commander stops a program, watches containment,
waives what cannot be reached, and decides on blocked containment steps."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live

from pausegate.api.models import PauseView
from pausegate.cli import views
from pausegate.cli.api_client import PausegateClient, Reply
from pausegate.cli.exits import EXIT_INTERRUPTED, EXIT_TIMEOUT, EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import emit_json, err, out, show, when
from pausegate.cli.session import connect
from pausegate.models.phase import Phase

CONTAINED_PHASES = frozenset(
    {Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL, Phase.RESUMING, Phase.RESUMED, Phase.DECOMMISSIONED}
)

StepArg = Annotated[str, typer.Argument(help="The blocked step, as status shows it (e.g. containment.agents).")]

app = typer.Typer()


@app.command("pause")
def pause(
    program: ProgramArg,
    reason: Annotated[str, typer.Option(help="Why the program is paused (goes into the timeline).")],
    severity: Annotated[str, typer.Option(help="low, medium, high or critical.")] = "high",
    wait: Annotated[bool, typer.Option(help="Watch containment until contained.")] = True,
    interval: Annotated[float, typer.Option(help="Seconds between progress checks.", min=0.05)] = 0.5,
    timeout: Annotated[float | None, typer.Option(help="Stop watching after this many seconds (exit 5).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pull the kill switch on PROGRAM and show containment until every target is confirmed."""
    with connect(as_json) as client:
        answer = client.trigger(program, reason, severity)
        started = answer.model.started
        view = Reply(answer.json["pause"], PauseView.model_validate)
        # What the runbook names that the deployment lacks: the pause started anyway; those steps will block.
        for problem in answer.model.problems:
            err.say(("warning:", "yellow"), " ", problem)
        if not as_json:
            verb = "paused" if started else "already paused (returning the open pause)"
            out.say(
                (program, "bold"), f" {verb}: incident ", view.model.incident_id, ", commander ", view.model.commander
            )
        if wait:
            view = _watch(client, program, view, interval=interval, timeout=timeout, as_json=as_json)
        if as_json:
            emit_json({"started": answer.json["started"], "pause": view.json, "problems": answer.model.problems})


def _watch(
    client: PausegateClient,
    program: str,
    view: Reply[PauseView],
    *,
    interval: float,
    timeout: float | None,
    as_json: bool,
) -> Reply[PauseView]:
    """Show progress until the pause is contained (a live table on a terminal, a line per change elsewhere)."""
    deadline = time.monotonic() + timeout if timeout else None
    live = None
    if out.is_terminal and not as_json:
        live = Live(views.progress_table(view.model), console=out.console, auto_refresh=False)
    last = ""
    try:
        if live:
            live.start()
        while True:
            progress = views.progress_line(view.model)
            if live:
                live.update(views.progress_table(view.model), refresh=True)
            elif progress.plain != last:
                # Not a terminal: one line per change, so logs and scripts see the progress too.
                (err if as_json else out).print(progress)
            last = progress.plain
            if view.model.phase in CONTAINED_PHASES:
                if not as_json:
                    contained_at = when(view.model.progress.contained_at)
                    out.say(("contained", "green"), f" at {contained_at}; the pause is ", view.model.phase)
                return view
            if deadline and time.monotonic() > deadline:
                fail(
                    EXIT_TIMEOUT,
                    "still containing; the pause goes on (see pausegate status)",
                    as_json=as_json,
                    error="timeout",
                )
            time.sleep(interval)
            view = client.status(program)
    except KeyboardInterrupt:
        err.say("stopped watching; the pause goes on (see pausegate status)")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if live:
            live.stop()


@app.command("waive")
def waive(
    program: ProgramArg,
    reason: Annotated[str, typer.Option(help="Why these agents need not be confirmed.")],
    agent: Annotated[list[str] | None, typer.Option("--agent", help="Agent id; repeat.")] = None,
    all_unconfirmed: Annotated[bool, typer.Option("--all", help="Every unconfirmed agent.")] = False,
    dataset: Annotated[
        str | None, typer.Option("--residual", help="Accept this dataset's residual access instead.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop waiting for agents that cannot be reached, or accept a dataset's residual access (commander)."""
    if dataset is not None and (agent or all_unconfirmed):
        fail(EXIT_USAGE, "--residual waives a dataset, not agents", as_json=as_json, error="usage")
    if dataset is None and not agent and not all_unconfirmed:
        fail(EXIT_USAGE, "name agents with --agent or pass --all", as_json=as_json, error="usage")
    with connect(as_json) as client:
        if dataset is not None:
            receipt = client.waive_residual(program, dataset, reason)
        else:
            receipt = client.waive(program, reason, agent_ids=agent or [], all_unconfirmed=all_unconfirmed)
        show(receipt, as_json, views.receipt)


@app.command("retry-step")
def retry_step(program: ProgramArg, step: StepArg, as_json: JsonOpt = False) -> None:
    """Run a blocked containment step of PROGRAM again, once its cause is fixed (commander)."""
    with connect(as_json) as client:
        show(client.retry_step(program, step), as_json, views.receipt)


@app.command("waive-step")
def waive_step(
    program: ProgramArg,
    step: StepArg,
    reason: Annotated[str, typer.Option(help="Why containment may go on without this step.")],
    as_json: JsonOpt = False,
) -> None:
    """Stop waiting for a blocked containment step of PROGRAM, with a reason (commander)."""
    with connect(as_json) as client:
        show(client.waive_step(program, step, reason), as_json, views.receipt)
