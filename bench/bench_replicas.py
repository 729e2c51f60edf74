"""Reviewer actions per second on one pause, through the API: one process keeping its state in files
(the baseline), against one and two replicas sharing the state database, in the same run.

Every configuration gets a fresh pause of the worked example on the real stack (Temporal dev server,
PostgreSQL, reference fleet, one worker), then 16 reviewers send ``--actions`` checklist amendments
at once over HTTP, each with its own Idempotency-Key. Reported: wall time, actions per second, the
ratio to the baseline, and the most updates in flight on the pause, counted at the Temporal client
every replica sends through (the limit is ``max_updates_in_flight_per_pause``, 8).

    PYTHONPATH=. python bench/bench_replicas.py [--actions 320] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pausegate.embedded.postgres import start_logging_postgres
from pausegate.models.people import Actor
from pausegate.temporal.client import temporal_cli
from tests.api.replicas_support import InFlight, counted_client, replicas
from tests.api.support import ApiWorld, api_world, evidence_for
from tests.apidb.support import new_state_database
from tests.support.harness import FAST_TUNING, pause_harness

REVIEWERS = [Actor(id=f"reviewer{n:02d}", roles=["security-analyst"]) for n in range(16)]
TUNING = FAST_TUNING.model_copy(update={"continue_as_new_after_updates": 500})


async def storm(worlds: list[ApiWorld], actions: int) -> float:
    """Seconds for ``actions`` amendments sent at once, spread over reviewers and replicas."""
    program = worlds[0].program

    async def amend(n: int) -> int:
        world = worlds[n % len(worlds)]
        who = REVIEWERS[n % len(REVIEWERS)].id
        async with httpx.AsyncClient(base_url=world.url, timeout=120.0) as http:
            r = await http.post(f"/v1/pauses/{program}/checklist/access-review",
                                json={"evidence": [evidence_for("access-review", "access-report")], "note": f"{n}"},
                                headers={"Authorization": f"Bearer {world.tokens[who]}", "Idempotency-Key": f"b{n}"})
            return r.status_code

    started = time.perf_counter()
    codes = await asyncio.gather(*(amend(n) for n in range(actions)))
    elapsed = time.perf_counter() - started
    assert codes == [200] * actions, {c: codes.count(c) for c in set(codes)}
    return elapsed


async def open_pause(world: ApiWorld) -> None:
    async with httpx.AsyncClient(base_url=world.url, timeout=60.0) as http:
        r = await http.post("/v1/pauses", json={"program": world.program, "reason": "bench"},
                            headers={"Authorization": f"Bearer {world.tokens['carol']}"})
        assert r.status_code == 201, r.text
    await world.wait_for_state("UNDER_REVIEW")


async def main(actions: int, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="pausegate-bench-replicas-"))
    admin_dsn, server = start_logging_postgres(root / "pg", root / "pglog", keep=False)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter, dev_server_log_level="error")
    results: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    try:
        for run in range(runs):
            for name, count in (("files, 1 process", 0), ("postgres, 1 replica", 1), ("postgres, 2 replicas", 2)):
                counter = InFlight()
                client = counted_client(env.client, counter)
                work = root / f"{run}-{count}"

                @asynccontextmanager
                async def worlds(count: int = count, work: Path = work,
                                 client: Client = client) -> AsyncIterator[list[ApiWorld]]:
                    async with pause_harness(env.client, admin_dsn, root / "pglog", work, agents=20,
                                             tuning=TUNING) as h:
                        if count == 0:
                            h.client = client
                            async with api_world(h, work / "api", extra_people=REVIEWERS) as world:
                                yield [world]
                        else:
                            state_db, _ = new_state_database(admin_dsn)
                            async with replicas(h, work / "api", state_db, count=count, client=client,
                                                extra_people=REVIEWERS) as group:
                                yield group

                async with worlds() as group:
                    await open_pause(group[0])
                    counter.peak = 0
                    results.setdefault(name, []).append(await storm(group, actions))
                    peaks[name] = max(peaks.get(name, 0), counter.peak)
    finally:
        await env.shutdown()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(results["files, 1 process"])
    print(f"{actions} reviewer actions at once on one pause, median of {runs} runs")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:22} {median:6.2f} s  {actions / median:7.1f} actions/s  ratio {median / base:5.2f}  "
              f"in flight at most {peaks[name]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=320)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.actions, args.runs))
