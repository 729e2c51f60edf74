"""Many pauses at once: 50 programs of 1,000 agents paused together, against one paused alone, in one run.

One reference fleet (a process of its own) carries every program; each program has its own
database; one worker runs in this process and the urgent worker in a process of its own, as the
embedded stack runs them. First a few programs are paused one after another (the "alone" figures,
their median); then the other programs are all paused at once. For each pause: when the switch went
off and when access was gone (the urgent part), and when it was fully contained (verified, sealed,
who saw what), each from the pause's own start.

Targets (``bench/run_all.py`` judges them): for each of the concurrent pauses, switch off and access
gone within 3x alone (and 1.5x a floor of minimal workflows, which this benchmark does not measure
yet); the last one fully contained no later than pausing them one after another, which is computed
here as alone x programs, not measured; none stuck.

    PYTHONPATH=. python bench/bench_concurrent.py [--programs 50] [--agents 1000] [--alone 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.world import COMMANDER, fleet_process, new_program, runbook_for, world
from pausegate.connectors.registry import Connectors
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState, Tuning
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import build_worker

STUCK_AFTER_SECONDS = 600.0


@dataclass
class Figures:
    switch: float
    access: float
    contained: float


def figures(status: PauseState) -> Figures:
    c = status.containment
    assert c.started_at and c.contained_at and c.agents.switch_off_at, status.phase
    revoked = next(e.at for e in status.timeline if e.action == "containment.dataset.revoked")
    return Figures(switch=(c.agents.switch_off_at - c.started_at).total_seconds(),
                   access=(revoked - c.started_at).total_seconds(),
                   contained=(c.contained_at - c.started_at).total_seconds())


async def main(programs: int, agents: int, alone: int) -> None:
    names = [new_program() for _ in range(alone + programs)]
    async with world() as w:
        started = time.perf_counter()
        databases = {f"db-{p}": w.database(p) for p in names}
        print(f"{len(names)} databases prepared in {time.perf_counter() - started:.1f} s")
        async with fleet_process(names, agents=agents, work=w.work) as fleet:
            settings = w.settings(queue="bench-concurrent", databases=databases, fleet_url=fleet.url)
            connectors = Connectors(settings)
            queue = settings.temporal.task_queue

            async def pause(program: str) -> None:
                await start_pause(w.client, PauseRequest(program=program, reason="bench", commander=COMMANDER,
                                                         runbook=runbook_for(program, connection=f"db-{program}")),
                                  task_queue=queue, tuning=Tuning())

            async def settled(group: list[str]) -> dict[str, PauseState]:
                deadline = time.monotonic() + STUCK_AFTER_SECONDS
                done: dict[str, PauseState] = {}
                while len(done) < len(group) and time.monotonic() < deadline:
                    for program in group:
                        if program not in done:
                            status = await read_status(w.client, program)
                            if status.phase != Phase.CONTAINING:
                                done[program] = status
                    await asyncio.sleep(0.05)
                return done

            async with w.urgent_worker(settings), build_worker(w.client, connectors, task_queue=queue):
                single: list[Figures] = []
                for program in names[:alone]:
                    await pause(program)
                    single.append(figures((await settled([program]))[program]))
                batch = names[alone:]
                t0 = datetime.now(UTC)
                await asyncio.gather(*(pause(p) for p in batch))
                done = await settled(batch)
            await connectors.aclose()

    stuck = [p for p in batch if p not in done or done[p].phase != Phase.UNDER_REVIEW]
    each = [figures(s) for p, s in done.items() if p not in stuck]
    base = Figures(*(statistics.median(getattr(f, k) for f in single) for k in ("switch", "access", "contained")))
    last = max((s.containment.contained_at - t0).total_seconds() for s in done.values()
               if s.containment.contained_at)
    serial = base.contained * len(batch)
    print(f"programs: {len(batch)} at once, {agents} agents each; alone: median of {alone}")
    print(f"alone: switch off {base.switch:.3f} s, access gone {base.access:.3f} s, "
          f"fully contained {base.contained:.3f} s")
    for name, key, ref in (("switch off", "switch", base.switch), ("access gone", "access", base.access),
                           ("fully contained", "contained", base.contained)):
        values = sorted(getattr(f, key) for f in each)
        print(f"{name} at once, s: median {statistics.median(values):.3f}, worst {values[-1]:.3f}; "
              f"worst / alone = {values[-1] / ref:.2f}x, median / alone = {statistics.median(values) / ref:.2f}x")
    print(f"last fully contained after {last:.2f} s; one after another: {serial:.2f} s; "
          f"last / one after another = {last / serial:.2f}x")
    print(f"stuck: {len(stuck)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--alone", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.programs, args.agents, args.alone))
