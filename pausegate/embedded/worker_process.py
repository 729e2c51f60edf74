"""A worker of one role as a process of its own beside the embedded stack.

A process, not a second worker in the stack's event loop: the steps that prove a pause (sealing,
who saw what) are CPU-bound, and in one interpreter they would hold the urgent steps and the
workflow tasks up through the GIL however the queues are split. The stack runs the workflows itself
and the urgent and proof steps each in such a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from pausegate.temporal.roles import WorkerRole

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 10.0


@contextlib.asynccontextmanager
async def worker_process(config_path: Path, log_path: Path,
                         role: WorkerRole) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``pausegate worker --role ROLE`` on ``config_path`` for the duration of the block; its output
    goes to ``log_path``."""
    with log_path.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pausegate.cli.main", "worker", "--role", role.value, "--config", str(config_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )
    log.info("worker_process.started", role=role.value, pid=process.pid, log=str(log_path))
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.info("worker_process.stopped", role=role.value, pid=process.pid, returncode=process.returncode)
