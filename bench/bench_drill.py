"""A drill timed from outside, against a real pause of the same scope, in one run.

Each round runs both arms on the real stack (Temporal dev server, PostgreSQL, the reference fleet in a
process of its own, the workers as the embedded stack runs them, history encryption on), each on a
fresh database of the worked example:

* the drill: ``start_drill`` on a program of ``--agents`` agents, on the worked example's canary (three
  agents, the ``telemetry_canary`` schema);
* the pause of the same scope: ``start_pause`` on a program whose only agents are as many as the
  canary's and whose only dataset is the canary schema, while a fleet of the other agents of the drill's
  program writes to the same database (both arms run beside the same work).

The prober (``pausegate.drill.prober``) watches both the same way: as the canary reader (can it read the
canary table?) and as the fleet (are the canary agents halted?), every ``--interval`` seconds, from the
client's start call. Switch-off is the first probe that sees every canary agent halted; access gone
the first that sees the canary reader refused. The ratios drill / pause are the cost of practising on
a canary instead of pausing (target: at most 1.2x). The drill is also checked: restored equal to its
snapshot, nothing outside the canary seen to change.

    PYTHONPATH=. python bench/bench_drill.py [--agents 1000] [--rounds 5] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from bench.world import COMMANDER, World, fleet_process, new_program, runbook_for, world, writer_dsn
from pausegate.connectors.registry import Connectors
from pausegate.drill.prober import Prober
from pausegate.models.drill import DrillOutcome, DrillPhase, DrillRequest
from pausegate.models.people import PauseRequest
from pausegate.models.runbook import Runbook
from pausegate.models.state import Tuning
from pausegate.temporal.drills import start_drill
from pausegate.temporal.pauses import start_pause


@dataclass
class Seen:
    switch_off: float
    access_gone: float


def drill_runbook(program: str) -> Runbook:
    runbook = runbook_for(program)
    assert runbook.canary is not None
    return runbook.model_copy(update={"canary": runbook.canary.model_copy(update={"hold": timedelta(seconds=1)})})


def pause_runbook(program: str) -> Runbook:
    """A real pause of exactly the canary's scope: its agents are the program's, its dataset the canary."""
    runbook = runbook_for(program)
    assert runbook.canary is not None
    canary = runbook.canary.dataset().model_copy(update={"name": "canary-data"})
    return runbook.model_copy(update={
        "datasets": [canary], "audit_sources": [], "consent": None, "collection": None, "watch": None,
        "canary": None, "fleet": runbook.fleet.model_copy(update={"writes": None})})


async def probed(w: World, start: Callable[[str], Awaitable[Any]], *, program: str, database: str, agents: int,
                 interval: float, queue: str, load: int = 0) -> tuple[Seen, Any]:
    """Start one arm and probe it until the canary is seen halted and unreadable; return what was seen
    (seconds from the start call) and what ``start`` returned. ``load``: agents of another program writing
    to the same database meanwhile, so that both arms run beside the same fleet's work."""
    async with contextlib.AsyncExitStack() as stack:
        if load:
            await stack.enter_async_context(fleet_process([new_program()], agents=load, work=w.work,
                                                          telemetry_dsn=writer_dsn(database)))
        fleet = await stack.enter_async_context(
            fleet_process([program], agents=agents, work=w.work, telemetry_dsn=writer_dsn(database)))
        settings = w.settings(queue=queue, databases={"telemetry-db": database}, fleet_url=fleet.url)
        connectors = Connectors(settings)
        prober = Prober(drill_runbook(program), database, connectors.fleet("telemetry-fleet"), w.client,
                        w.work / f"{queue}.jsonl", interval=interval)
        try:
            async with w.stack_workers(settings, connectors), \
                    await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
                tables = await prober.canary_tables(conn)
                first = await prober.probe(conn, tables)
                assert first.canary_readable and not first.canary_halted, "the canary is not as seeded"
                t0 = time.perf_counter()
                started = await start(queue)
                switch_off = access_gone = None
                while switch_off is None or access_gone is None:
                    seen = await prober.probe(conn, tables)
                    now = time.perf_counter() - t0
                    if switch_off is None and seen.canary_halted:
                        switch_off = now
                    if access_gone is None and not seen.canary_readable:
                        access_gone = now
                    assert not seen.watched_refused and not seen.others_halted, "outside the canary changed"
                    if now > 120:
                        raise RuntimeError(f"{queue}: not contained after 120 s")
                    await asyncio.sleep(interval)
                result = started if not hasattr(started, "result") else await started.result()
        finally:
            await connectors.aclose()
    return Seen(switch_off, access_gone), result


async def drill_arm(w: World, agents: int, interval: float) -> Seen:
    program = new_program()
    runbook = drill_runbook(program)

    async def start(queue: str) -> Any:
        return await start_drill(w.client, DrillRequest(program=program, commander=COMMANDER, runbook=runbook),
                                 task_queue=queue, tuning=Tuning())

    seen, final = await probed(w, start, program=program, database=w.database(program), agents=agents,
                               interval=interval, queue=f"bench-{program}")
    assert final.phase == DrillPhase.RESTORED and final.outcome == DrillOutcome.COMPLETED, final.outcome
    assert final.restore is not None and final.restore.equal, final.restore
    return seen


async def pause_arm(w: World, canary_agents: int, interval: float, load: int) -> Seen:
    program = new_program()
    runbook = pause_runbook(program)

    async def start(queue: str) -> Any:
        request = PauseRequest(program=program, reason="bench", commander=COMMANDER, runbook=runbook)
        handle, _ = await start_pause(w.client, request, task_queue=queue, tuning=Tuning())
        return handle.id

    seen, _ = await probed(w, start, program=program, database=w.database(program), agents=canary_agents,
                           interval=interval, queue=f"bench-{program}", load=load)
    return seen


async def main(agents: int, rounds: int, interval: float) -> None:
    canary = drill_runbook("x").canary
    assert canary is not None
    async with world() as w:
        # warm-up of both arms; not counted
        await drill_arm(w, agents, interval)
        await pause_arm(w, len(canary.agents), interval, agents - len(canary.agents))
        drills: list[Seen] = []
        pauses: list[Seen] = []
        for _ in range(rounds):
            drills.append(await drill_arm(w, agents, interval))
            pauses.append(await pause_arm(w, len(canary.agents), interval, agents - len(canary.agents)))
    print(f"agents: {agents} (drill; {len(canary.agents)} of them canaries), pause of the same scope: "
          f"{len(canary.agents)} agents and the canary schema; rounds: {rounds}; probe every {interval} s")
    for name, field in (("switch off", "switch_off"), ("access gone", "access_gone")):
        d = [getattr(s, field) for s in drills]
        p = [getattr(s, field) for s in pauses]
        print(f"drill {name} (prober), s: {', '.join(f'{v:.3f}' for v in d)}")
        print(f"pause {name} (prober), s: {', '.join(f'{v:.3f}' for v in p)}")
        ratio = statistics.median(d) / statistics.median(p)
        print(f"{name}: drill / pause of the same scope = {ratio:.2f}x (medians)")
    print("every drill restored equal to its snapshot; the prober saw nothing outside the canary change")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between probes")
    parser.add_argument("--smoke", action="store_true", help="small sizes, for CI: 100 agents, one round")
    args = parser.parse_args()
    if args.smoke:
        args.agents, args.rounds = 100, 1
    asyncio.run(main(args.agents, args.rounds, args.interval))

