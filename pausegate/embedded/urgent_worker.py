"""The urgent worker as a process of its own beside the embedded stack.

A process, not a second worker in the stack's event loop: the steps that prove a pause (sealing,
who saw what) are CPU-bound, and in one interpreter they would hold the urgent steps up through
the GIL however the queues are split.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 10.0


@contextlib.asynccontextmanager
async def urgent_worker_process(config_path: Path, log_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``pausegate worker --urgent`` on ``config_path`` for the duration of the block; its output
    goes to ``log_path``."""
    with log_path.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pausegate.cli.main", "worker", "--urgent", "--config", str(config_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )
    log.info("urgent_worker.started", pid=process.pid, log=str(log_path))
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
        log.info("urgent_worker.stopped", pid=process.pid, returncode=process.returncode)
