"""Many pauses at once: 50 programs of 1,000 agents paused together, in one run, against two baselines
from the same run: the same programs' pauses one after another, and the floor.

One reference fleet (a process of its own) carries every program; each program has its own database;
the workers run as the embedded stack runs them: the workflows in this process, beside the client
that starts the pauses, the urgent steps and the proof steps each in a process of its own. Three arms:

* one after another: ``--programs`` programs paused one after another, each waited for until fully
  contained. The total is the measured one-after-another time; each pause's own figures, their median,
  are the "alone" figures.
* the floor: ``--programs`` minimal workflows (``bench/floor.py``) started at once, each running one
  no-op activity, on a task queue of their own served by a worker in this process: what the engine
  and this machine allow at best for a workflow to get one step run.
* at once: ``--programs`` other programs paused together.

Everything is timed from the client's start call (for the pauses at once and the floor, the moment
they were all asked): switch off is when the fleet turned the program's switch off, access gone when
the revoke committed (both the targets' own clocks), fully contained when the pause left CONTAINING;
the floor's figure is when its activity ran. Targets (``bench/run_all.py`` judges them): switch off
and access gone, worst of the pauses at once <= 1.5x the floor's worst and <= 3x alone; the last one
fully contained no later than the measured one-after-another run; none stuck.

    PYTHONPATH=. python bench/bench_concurrent.py [--programs 50] [--agents 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.worker import Worker

from bench.floor import FloorWorkflow, noop
from bench.world import COMMANDER, World, fleet_process, new_program, runbook_for, world
from pausegate.config import Settings
from pausegate.connectors.registry import Connectors
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState, Tuning
from pausegate.temporal.pauses import pause_handle, read_status, start_pause

STUCK_AFTER_SECONDS = 600.0
SWEEP_SECONDS = 0.5  # how often the pauses at once are asked how they stand; their figures are their own stamps


@dataclass
class Figures:
    switch: float
    access: float
    contained: float


def figures(status: PauseState, asked: datetime) -> Figures:
    c = status.containment
    assert c.contained_at and c.agents.switch_off_at and c.access_gone_at, status.phase
    return Figures(switch=(c.agents.switch_off_at - asked).total_seconds(),
                   access=(c.access_gone_at - asked).total_seconds(),
                   contained=(c.contained_at - asked).total_seconds())


def request(program: str) -> PauseRequest:
    """A pause request as the API builds one (its runbook loaded before anyone is timed, as the API's is)."""
    return PauseRequest(program=program, reason="bench", commander=COMMANDER,
                        runbook=runbook_for(program, connection=f"db-{program}"))


async def pause(w: World, settings: Settings, asked: PauseRequest) -> None:
    await start_pause(w.client, asked, task_queue=settings.temporal.task_queue, tuning=Tuning())


async def settled(w: World, group: list[str], every: float) -> dict[str, PauseState]:
    """Each program's status once it left CONTAINING (or as it stood when the stuck limit passed)."""
    deadline = time.monotonic() + STUCK_AFTER_SECONDS
    done: dict[str, PauseState] = {}
    while len(done) < len(group) and time.monotonic() < deadline:
        for program in group:
            if program not in done and (status := await read_status(w.client, program)).phase != Phase.CONTAINING:
                done[program] = status
        if len(done) < len(group):
            await asyncio.sleep(every)
    return done


async def one_after_another(w: World, settings: Settings, programs: list[str]) -> tuple[list[Figures], float]:
    """Each pause's figures, and the time they took together (from each start call to that pause contained)."""
    each: list[Figures] = []
    total = 0.0
    for program in programs:
        made = request(program)
        asked, started = datetime.now(UTC), time.perf_counter()
        await pause(w, settings, made)
        status = (await settled(w, [program], 0.02))[program]
        total += time.perf_counter() - started
        assert status.phase == Phase.UNDER_REVIEW, (program, status.phase)
        each.append(figures(status, asked))
    return each, total


async def first_steps(w: World, program: str, asked: datetime) -> str:
    """Where a pause's first second went: its first workflow task and its halt, from the start call."""
    history = await pause_handle(w.client, program).fetch_history()
    marks: dict[str, float] = {}
    for event in history.events:
        at = (event.event_time.ToDatetime().replace(tzinfo=UTC) - asked).total_seconds()
        if event.HasField("workflow_execution_started_event_attributes"):
            marks.setdefault("started", at)
        elif event.HasField("workflow_task_started_event_attributes"):
            marks.setdefault("first workflow task picked up", at)
        elif event.HasField("workflow_task_completed_event_attributes"):
            marks.setdefault("first workflow task done", at)
        elif event.HasField("activity_task_started_event_attributes") and "halt picked up" not in marks:
            marks["halt picked up"] = at
    return ", ".join(f"{name} {at:.3f}" for name, at in marks.items())


async def floor(w: World, count: int) -> list[float]:
    """Seconds from asking to each minimal workflow's activity running."""
    queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
    async with Worker(w.client, task_queue=queue, workflows=[FloorWorkflow], activities=[noop]):
        asked = datetime.now(UTC)
        handles = await asyncio.gather(*(
            w.client.start_workflow(FloorWorkflow.run, id=f"{queue}-{n}", task_queue=queue) for n in range(count)))
        ran = await asyncio.gather(*(h.result() for h in handles))
    return [(at - asked).total_seconds() for at in ran]


def worst_line(name: str, values: list[float], alone: float, floor_worst: float | None) -> str:
    values = sorted(values)
    worst, median = values[-1], statistics.median(values)
    against_floor = "" if floor_worst is None else f"; {name} worst / floor = {worst / floor_worst:.2f}x"
    return (f"{name} at once, s: median {median:.3f}, worst {worst:.3f}; {name} worst / alone = "
            f"{worst / alone:.2f}x{against_floor}; median / alone = {median / alone:.2f}x")


async def main(programs: int, agents: int) -> None:
    warm = new_program()
    serial_names = [new_program() for _ in range(programs)]
    batch = [new_program() for _ in range(programs)]
    names = [warm, *serial_names, *batch]
    async with world() as w:
        started = time.perf_counter()
        databases = {f"db-{p}": w.database(p) for p in names}
        print(f"{len(names)} databases prepared in {time.perf_counter() - started:.1f} s")
        async with fleet_process(names, agents=agents, work=w.work) as fleet:
            settings = w.settings(queue="bench-concurrent", databases=databases, fleet_url=fleet.url)
            connectors = Connectors(settings)
            async with w.stack_workers(settings, connectors):
                # warm-up (imports, connections, the server's caches), not counted: one pause, a small floor
                await one_after_another(w, settings, [warm])
                await floor(w, 2)
                single, serial = await one_after_another(w, settings, serial_names)
                floor_runs = await floor(w, programs)
                requests = [request(p) for p in batch]
                asked = datetime.now(UTC)
                await asyncio.gather(*(pause(w, settings, r) for r in requests))
                done = await settled(w, batch, SWEEP_SECONDS)
                slowest = max((p for p in done if done[p].containment.agents.switch_off_at),
                              key=lambda p: done[p].containment.agents.switch_off_at or asked, default=None)
                trace = await first_steps(w, slowest, asked) if slowest else "none"
            await connectors.aclose()

    stuck = [p for p in batch if p not in done or done[p].phase != Phase.UNDER_REVIEW]
    each = [figures(s, asked) for p, s in done.items() if p not in stuck]
    alone = Figures(*(statistics.median(getattr(f, k) for f in single) for k in ("switch", "access", "contained")))
    last = max(f.contained for f in each) if each else float("nan")
    floor_worst = max(floor_runs)
    print(f"programs: {programs} at once, {agents} agents each; alone: the median of {programs} paused one after "
          "another; timed from the client's start call")
    print(f"alone: switch off {alone.switch:.3f} s, access gone {alone.access:.3f} s, "
          f"fully contained {alone.contained:.3f} s")
    print(f"floor ({programs} minimal workflows at once, one no-op activity each), s: median "
          f"{statistics.median(floor_runs):.3f}, worst {floor_worst:.3f}")
    print(worst_line("switch off", [f.switch for f in each], alone.switch, floor_worst))
    print(worst_line("access gone", [f.access for f in each], alone.access, floor_worst))
    print(worst_line("fully contained", [f.contained for f in each], alone.contained, None))
    print(f"last fully contained after {last:.2f} s; one after another (measured): {serial:.2f} s; "
          f"last / one after another = {last / serial:.2f}x")
    print(f"the slowest switch off at once, s from the start call: {trace}")
    print(f"stuck: {len(stuck)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--agents", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.programs, args.agents))
