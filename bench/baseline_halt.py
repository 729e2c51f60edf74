"""The halt and the data-stop check run directly (no workflow), in a process of their own as the urgent
worker is: ``bench_contain``'s baseline starts it, waits for ``ready``, sends ``go`` and reads the result.

    python -m bench.baseline_halt --fleet URL --program P --dsn DSN --agents N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from temporalio.testing import ActivityEnvironment

from activities.data_stop import DataStopActivities
from activities.fleet import FleetActivities
from pausegate.connectors.fleet import HttpFleet
from pausegate.models.data_stop import DataStopInput
from pausegate.models.runbook import Runbook
from pausegate.models.steps import HaltAgentsInput
from pausegate.runbook.loader import load_runbook

RUNBOOK = "runbooks/employee-telemetry.yaml"


async def main(args: argparse.Namespace) -> None:
    runbook: Runbook = load_runbook(RUNBOOK)
    spec, writes = runbook.datasets[0], runbook.fleet.writes
    assert writes is not None
    env = ActivityEnvironment()
    async with HttpFleet(args.fleet) as fleet:
        halt = FleetActivities(lambda _: fleet).halt_agents
        data_stop = DataStopActivities(lambda _: args.dsn).check_data_stop
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started = time.perf_counter()
        result = await env.run(halt, HaltAgentsInput(
            connection="fleet", program=args.program, incident_id=f"{args.program}/baseline", reason="bench",
            batch_size=runbook.fleet.batch_size, concurrency=runbook.fleet.concurrency))
        halted = time.perf_counter() - started
        assert result.switch_off_at is not None and result.halted == args.agents, result
        stop = await env.run(data_stop, DataStopInput(
            connection="db", schema_name=spec.schema_name, tables=list(writes.tables),
            written_at=writes.written_at, switch_off_at=result.switch_off_at))
        print(json.dumps({"switch_off_at": result.switch_off_at.isoformat(), "halted_after": halted,
                          "done_after": time.perf_counter() - started, "rows_after": stop.rows_after}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--agents", type=int, required=True)
    asyncio.run(main(parser.parse_args()))
