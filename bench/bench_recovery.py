"""Crash recovery under load: a worker killed mid-containment, with and without two CPU-bound processes
running beside it, in one run.

The real stack: Temporal dev server, PostgreSQL, the reference fleet (a process of its own), the urgent
worker (a process of its own) and the worker as a process that is killed. Each round pauses a fresh copy
of the program while the fleet holds the export of its audit trail, so the worker is inside the seal
when it is killed (kill -9); then the hold is lifted and a replacement worker is started. Recovery is
the time from the kill to this client seeing the pause fully contained: the replacement's start (its
imports and connect, the part CPU load slows most) is inside it, as it is for an operator.

The rounds alternate between a quiet machine and one with two CPU-bound processes (started and
stopped by this benchmark) competing for the two cores; the ratio is loaded / quiet (target <= 1.5).

    PYTHONPATH=. python bench/bench_recovery.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.world import COMMANDER, World, fleet_process, new_program, runbook_for, world
from pausegate.embedded.stack import write_config
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import Tuning
from pausegate.temporal.pauses import read_status, start_pause

TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=1.5,
                workflow_task_timeout_seconds=2.0)
HOLD_AUDIT = {"latency_ms": 1, "jitter_ms": 1, "ops": ["audit"], "hold_before_ms": 600_000}
QUIET = {"latency_ms": 1, "jitter_ms": 1}


def _burn() -> None:
    while True:
        pass


@contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """``processes`` busy loops, one per process, for the duration of the block."""
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(processes)]
    for b in burners:
        b.start()
    try:
        yield
    finally:
        for b in burners:
            b.kill()
            b.join()


async def start_worker(config: Path, log: Path) -> asyncio.subprocess.Process:
    """A worker process, once it reports itself started."""
    out = log.open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pausegate.cli.main", "worker", "--config", str(config), stdout=out, stderr=out)
    out.close()
    while b"worker.started" not in await asyncio.to_thread(log.read_bytes):
        if process.returncode is not None:
            raise RuntimeError(f"worker exited; see {log}")
        await asyncio.sleep(0.02)
    return process


async def one_round(w: World, fleet_url: str, admin: httpx.AsyncClient, program: str, database: str,
                    n: int) -> float:
    settings = w.settings(queue=f"bench-{program}", databases={"telemetry-db": database}, fleet_url=fleet_url)
    config = w.work / f"worker-{n}.toml"
    write_config(config, settings)
    async with w.urgent_worker(settings):
        await admin.put("/admin/faults", json=HOLD_AUDIT)
        first = await start_worker(config, w.work / f"worker-{n}-a.log")
        await start_pause(w.client, PauseRequest(program=program, reason="bench", commander=COMMANDER,
                                                 runbook=runbook_for(program)),
                          task_queue=settings.temporal.task_queue, tuning=TUNING)
        # inside the seal: access revoked, the fleet's trail still being exported
        while not ((s := await read_status(w.client, program)).containment.access_revoked
                   and "fleet-audit" in s.containment.evidence_pending):
            await asyncio.sleep(0.05)
        killed = time.perf_counter()
        first.kill()
        await first.wait()
        await admin.put("/admin/faults", json=QUIET)
        second = await start_worker(config, w.work / f"worker-{n}-b.log")
        try:
            while (await read_status(w.client, program)).phase == Phase.CONTAINING:
                await asyncio.sleep(0.02)
            took = time.perf_counter() - killed
        finally:
            second.terminate()
            await second.wait()
    return took


async def main(rounds: int) -> None:
    programs = [new_program() for _ in range(2 * rounds)]
    async with world() as w:
        databases = {p: w.database(p) for p in programs}
        async with fleet_process(programs, agents=1000, work=w.work) as fleet, \
                httpx.AsyncClient(base_url=fleet.url, timeout=30) as admin:
            quiet: list[float] = []
            loaded: list[float] = []
            for n in range(rounds):
                program = programs[2 * n]
                quiet.append(await one_round(w, fleet.url, admin, program, databases[program], 2 * n))
                program = programs[2 * n + 1]
                with cpu_load(2):
                    loaded.append(await one_round(w, fleet.url, admin, program, databases[program], 2 * n + 1))
    q, lo = statistics.median(quiet), statistics.median(loaded)
    print(f"recovery from kill -9 in the seal to contained, quiet, s: {', '.join(f'{t:.2f}' for t in quiet)}")
    print(f"recovery with two CPU-bound processes beside it, s: {', '.join(f'{t:.2f}' for t in loaded)}")
    print(f"recovery under load / quiet = {lo / q:.2f}x (median {lo:.2f} s / {q:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
