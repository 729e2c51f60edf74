"""``drill``: the kill switch practised on the runbook's canary, restored afterwards, and its report with
the prober's figures beside the workflow's own (``python -m pausegate.drill.prober`` times it from
outside)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from pausegate.cli.options import JsonOpt, ProgramArg
from pausegate.cli.output import emit_json, line, out, show, when
from pausegate.cli.session import connect
from pausegate.models.drill import DrillPhase, DrillState

app = typer.Typer()

POLL_SECONDS = 1.0


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def report(drill: DrillState) -> Group:
    """A drill as people read it: what ended the practice, the restore, the checklist, both sets of figures."""
    head = line((drill.program, "bold"), " drill (", (drill.label, "magenta"), ") started ", when(drill.started_at),
                " by ", drill.commander, ": ", (drill.phase.value, "bold"))
    if drill.outcome is not None:
        head.append_text(line("\n   ", drill.outcome.value, ": ", drill.outcome_reason))
    if drill.restore is not None:
        r = drill.restore
        head.append_text(line("\n   restore: ", ("equal to the snapshot", "green") if r.equal else
                              (f"{len(r.differences)} differences", "red"),
                              f" ({r.compared} catalog entries, {r.statements} statements)"))
    head.append_text(line("\n   canary agents: ", "left halted to the open pause" if drill.agents_left_to_pause
                          else f"{drill.agents_collecting} collecting again"))
    checklist = Text()
    for item in drill.checklist:
        checklist.append_text(line("\n   ", ("✔ ", "green") if item.done_at else ("· ", "yellow"), item.title))
    figures = Table(title="times from the drill's start", title_justify="left")
    figures.add_column("")
    figures.add_column("workflow")
    figures.add_column("prober (outside)")
    prober = drill.prober
    for name, field in (("switch off", "switch_off_seconds"), ("access gone", "access_gone_seconds"),
                        ("restored", "restored_seconds")):
        figures.add_row(name, _seconds(getattr(drill.figures, field)),
                        _seconds(getattr(prober, field)) if prober else "no prober")
    parts: list[Text | Table] = [head, checklist, figures]
    if prober is not None and prober.outside_changes:
        parts.append(line(("outside the canary: ", "red"), "; ".join(prober.outside_changes)))
    if drill.prober_via is not None:
        parts.append(line("prober's figures: ", drill.prober_via))
    if drill.prober_refused:
        parts.append(line((f"{drill.prober_refused} prober reports refused", "red"),
                          " (not sealed for this drill: see the timeline)"))
    return Group(*parts)


@app.command("drill")
def drill(
    program: ProgramArg,
    reason: Annotated[str, typer.Option(help="Why (goes into the drill's timeline).")] = "drill",
    wait: Annotated[bool, typer.Option(help="Wait for the restore and print the drill's report.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the restore.")] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Drill PROGRAM: its real pause on the runbook's canary, then the canary restored (commanders only)."""
    with connect(as_json) as client:
        started = client.start_drill(program, reason)
        if not wait:
            show(started, as_json, report)
            return
        deadline = time.monotonic() + timeout
        reply = client.drill(program)
        while reply.model.phase != DrillPhase.RESTORED and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)  # a person waits here; the drill goes on without them
            reply = client.drill(program)
        show(reply, as_json, report)


@app.command("drill-status")
def drill_status(program: ProgramArg, as_json: JsonOpt = False) -> None:
    """Show PROGRAM's latest drill and its report."""
    with connect(as_json) as client:
        show(client.drill(program), as_json, report)


@app.command("drill-stop")
def drill_stop(
    program: ProgramArg,
    reason: Annotated[str, typer.Option(help="Why (goes into the drill's timeline).")],
    as_json: JsonOpt = False,
) -> None:
    """Abort PROGRAM's running drill: its canary is restored at once."""
    with connect(as_json) as client:
        answer = client.stop_drill(program, reason)
    if as_json:
        emit_json(answer.json)
    else:
        out.print(line("stopped" if answer.json.get("stopped") else "no drill was running"))


@app.command("drill-schedule")
def drill_schedule(program: ProgramArg, as_json: JsonOpt = False) -> None:
    """Schedule PROGRAM's drills on its runbook's canary.schedule (commanders only)."""
    with connect(as_json) as client:
        answer = client.schedule_drills(program)
    if as_json:
        emit_json(answer.json)
    else:
        out.print(line("scheduled: ", str(answer.json.get("cron", "")), " (", str(answer.json.get("schedule_id", "")),
                       ")"))
