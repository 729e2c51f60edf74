"""``pausegate up`` and ``pausegate worker``: run the embedded stack, or a worker against any Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pausegate.config import load_settings
from pausegate.logging import configure


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
    """Start the embedded stack: Temporal (SQLite), PostgreSQL with the worked example, the reference
    fleet, a chat sink, the API and a worker. Ctrl-C stops it; starting it again loses nothing."""
    from pausegate.embedded.stack import StackOptions, embedded_stack

    configure()
    console = Console()
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
            table = Table(title="pausegate embedded stack", show_header=False)
            for name, where in stack.describe().items():
                table.add_row(name, where)
            console.print(table)
            for line in stack.instructions():
                console.print(line, soft_wrap=True)
            await stop.wait()
            console.print("stopping…")

    asyncio.run(serve())
    console.print("stopped; run the same command to carry on where it left off")


def worker(
    config: Annotated[Path | None, typer.Option(help="Configuration file (default: $PAUSEGATE_CONFIG).")] = None,
) -> None:
    """Run a worker against the configured Temporal (cluster or Cloud); start more to scale out."""
    from pausegate.temporal.worker import run_worker

    configure()
    settings = load_settings(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings))


def api(
    config: Annotated[Path | None, typer.Option(help="Configuration file (default: $PAUSEGATE_CONFIG).")] = None,
) -> None:
    """Serve the HTTP API against the configured Temporal (cluster or Cloud)."""
    from pausegate.api.__main__ import serve

    configure()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(load_settings(config)))
