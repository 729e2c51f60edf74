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

Each round's recovery is broken down, from the kill, into: the replacement started (it logs that just
before it polls; its imports, connect and worker build are before it); the server giving up the killed
attempt (its heartbeat timeout); the attempt retried on the replacement (a retry backoff after the
timeout, or when the replacement polls, whichever is later); the retried seal done; the pause contained
(the workflow tasks and the steps after the seal). The breakdown prints the median of each, quiet and
loaded, and every round's figure, so that where the time goes under load is on the page.

    PYTHONPATH=. python bench/bench_recovery.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.world import COMMANDER, World, fleet_process, new_program, runbook_for, world
from pausegate.embedded.stack import write_config
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import Tuning
from pausegate.temporal.pauses import pause_handle, read_status, start_pause

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


@dataclass
class Phases:
    """Seconds from the kill to each step of one recovery (server times where the server records them)."""

    polling: float = float("nan")
    """the replacement reports itself started (its last step before it polls the task queue)"""
    timed_out: float = float("nan")
    """the server gave up on the killed worker's attempt (its heartbeat timeout); the retry is due a backoff later"""
    retried: float = float("nan")
    """the activity's retry started on the replacement"""
    sealed: float = float("nan")
    """the retried activity completed"""
    contained: float = float("nan")
    """this client saw the pause contained"""
    lost: set[str] = field(default_factory=set)
    """the activity ids of the attempts the kill cut short"""


PHASES = {
    "polling": "replacement started, polling",
    "timed_out": "lost attempt timed out",
    "retried": "activity retried",
    "sealed": "retried activity done",
    "contained": "contained",
}
"""The phases of a recovery in order, as the breakdown prints them (median of the rounds)."""


async def watch_recovery(client: Client, program: str, killed: float, phases: Phases) -> None:
    """When the server gave up the attempts the kill cut short (their pending activities' attempt moved
    on), seen to within the 50 ms between looks, and which activities those were."""
    handle = pause_handle(client, program)
    while True:
        pending = (await handle.describe()).raw_description.pending_activities
        if lost := {activity.activity_id for activity in pending if activity.attempt > 1}:
            phases.timed_out = time.time() - killed
            phases.lost = lost
            return
        await asyncio.sleep(0.05)


def _seconds(stamp: Timestamp) -> float:
    return stamp.ToNanoseconds() / 1e9


async def from_history(client: Client, program: str, killed: float, phases: Phases) -> None:
    """When the attempts the kill cut short started again and when the last of them completed, from the
    pause's history."""
    scheduled: set[int] = set()
    retried: list[float] = []
    completed: list[float] = []
    async for event in pause_handle(client, program).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_id in phases.lost:
                scheduled.add(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            if event.activity_task_started_event_attributes.scheduled_event_id in scheduled:
                retried.append(_seconds(event.event_time) - killed)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            if event.activity_task_completed_event_attributes.scheduled_event_id in scheduled:
                completed.append(_seconds(event.event_time) - killed)
    phases.retried = min(retried, default=float("nan"))
    phases.sealed = max(completed, default=float("nan"))


async def one_round(w: World, fleet_url: str, admin: httpx.AsyncClient, program: str, database: str,
                    n: int) -> Phases:
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
        killed = time.time()
        first.kill()
        await first.wait()
        await admin.put("/admin/faults", json=QUIET)
        phases = Phases()
        watcher = asyncio.create_task(watch_recovery(w.client, program, killed, phases))
        second = await start_worker(config, w.work / f"worker-{n}-b.log")
        phases.polling = time.time() - killed
        try:
            while (await read_status(w.client, program)).phase == Phase.CONTAINING:
                await asyncio.sleep(0.02)
            phases.contained = time.time() - killed
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            second.terminate()
            await second.wait()
    await from_history(w.client, program, killed, phases)
    return phases


async def main(rounds: int) -> None:
    programs = [new_program() for _ in range(2 * rounds)]
    async with world() as w:
        databases = {p: w.database(p) for p in programs}
        async with fleet_process(programs, agents=1000, work=w.work) as fleet, \
                httpx.AsyncClient(base_url=fleet.url, timeout=30) as admin:
            quiet: list[Phases] = []
            loaded: list[Phases] = []
            for n in range(rounds):
                program = programs[2 * n]
                quiet.append(await one_round(w, fleet.url, admin, program, databases[program], 2 * n))
                program = programs[2 * n + 1]
                with cpu_load(2):
                    loaded.append(await one_round(w, fleet.url, admin, program, databases[program], 2 * n + 1))
    for name, doc in PHASES.items():
        q_phase = [getattr(r, name) for r in quiet]
        lo_phase = [getattr(r, name) for r in loaded]
        print(f"  kill -> {doc}: quiet {statistics.median(q_phase):.2f} s, loaded {statistics.median(lo_phase):.2f} s"
              f" (rounds: {', '.join(f'{t:.2f}' for t in q_phase)} / {', '.join(f'{t:.2f}' for t in lo_phase)})")
    q, lo = statistics.median(r.contained for r in quiet), statistics.median(r.contained for r in loaded)
    print("recovery from kill -9 in the seal to contained, quiet, s: "
          f"{', '.join(f'{r.contained:.2f}' for r in quiet)}")
    print(f"recovery with two CPU-bound processes beside it, s: {', '.join(f'{r.contained:.2f}' for r in loaded)}")
    print(f"recovery under load / quiet = {lo / q:.2f}x (median {lo:.2f} s / {q:.2f} s)")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
