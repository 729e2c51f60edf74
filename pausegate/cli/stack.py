"""``up``, ``worker`` and ``api``: run the embedded stack, or a worker or the API against any Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from pausegate.cli.output import add_row, line, out, table
from pausegate.config import load_settings
from pausegate.logging import configure
from pausegate.temporal.roles import WorkerRole

app = typer.Typer()


@app.command(
    "up",
    epilog="Temporal keeps its state in SQLite and PostgreSQL holds the worked example, both under --data-dir. "
    "Ctrl-C stops the stack; starting it again loses nothing.",
)
def up(
    data_dir: Annotated[Path, typer.Option(help="Where everything that must survive a restart lives.")] = Path(
        ".pausegate"
    ),
    agents: Annotated[int, typer.Option(help="Agents in the reference fleet.")] = 10_000,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    fleet_port: Annotated[int, typer.Option(help="Reference fleet port.")] = 8701,
    chat_port: Annotated[int, typer.Option(help="Reference chat sink port.")] = 8702,
    api_port: Annotated[int, typer.Option(help="HTTP API port.")] = 8700,
) -> None:
    """Start the embedded stack: Temporal, PostgreSQL, the reference fleet, a chat sink, the API and the workers."""
    from pausegate.embedded.stack import StackOptions, embedded_stack

    configure()
    options = StackOptions(
        data_dir=data_dir, agents=agents, temporal_port=temporal_port, ui_port=ui_port,
        fleet_port=fleet_port, chat_port=chat_port, api_port=api_port,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with embedded_stack(options) as stack:
            described = table(line("pausegate embedded stack"), show_header=False)
            for name, where in stack.describe().items():
                add_row(described, name, where)
            out.print(described)
            for instruction in stack.instructions():
                out.say(instruction)
            await stop.wait()
            out.say("stopping…")

    asyncio.run(serve())
    out.say("stopped; run the same command to carry on where it left off")


@app.command(
    "worker",
    epilog="Every deployment runs the workflows, the proof steps and the urgent steps: at least one worker of role "
    "all and one urgent worker (--urgent); where many pauses may start together, workflows and proof in processes "
    "of their own.",
)
def worker(
    config: Annotated[Path | None, typer.Option(help="Configuration file (default: $PAUSEGATE_CONFIG).")] = None,
    role: Annotated[WorkerRole, typer.Option(
        help="What this worker runs: workflows and proof steps together (all), workflow tasks only (workflows), "
             "the steps that prove a pause only (proof), or the steps that stop harm (urgent).",
    )] = WorkerRole.ALL,
    urgent: Annotated[bool, typer.Option(
        "--urgent", help="Run the urgent worker: only the steps that stop harm (switch, halts), on the urgent queue "
                         "(the same as --role urgent).",
    )] = False,
) -> None:
    """Run a worker against the configured Temporal (cluster or Cloud); start more to scale out."""
    from pausegate.temporal.worker import run_worker

    configure()
    settings = load_settings(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, role=WorkerRole.URGENT if urgent else role))


@app.command("api")
def api(
    config: Annotated[Path | None, typer.Option(help="Configuration file (default: $PAUSEGATE_CONFIG).")] = None,
) -> None:
    """Serve the HTTP API against the configured Temporal (cluster or Cloud)."""
    from pausegate.app import run

    configure()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(load_settings(config)))
