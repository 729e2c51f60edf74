"""Time to contain the worked example with 10,000 agents, against the same steps run without a workflow.

Each run pauses a fresh copy of the program (its own fleet program, database and evidence
directory) on the real stack: Temporal dev server, PostgreSQL, the reference fleet with
its default latency, one worker. Time to contain is measured by the workflow itself
(``contained_at - started_at``) and by the client (start to UNDER_REVIEW). The baseline
runs the same three containment activities directly (``ActivityEnvironment``, no server,
no workflow) in the same process on another fresh copy, so the ratio is the cost of
durable orchestration.

    python bench/bench_contain.py [--agents 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.access import AccessActivities
from activities.evidence import EvidenceActivities
from activities.fleet import FleetActivities
from pausegate.config import EvidenceSettings, FleetConnection, PostgresConnection, Settings, TemporalSettings
from pausegate.connectors.registry import Connectors
from pausegate.embedded.postgres import start_logging_postgres
from pausegate.embedded.stack import prepare_database
from pausegate.models.pause import (
    Actor,
    ContainDatasetInput,
    HaltAgentsInput,
    PauseRequest,
    Phase,
    SnapshotInput,
    Tuning,
)
from pausegate.reference.fleet.server import serve_fleet
from pausegate.reference.fleet.settings import FleetSettings
from pausegate.runbook.loader import load_runbook
from pausegate.temporal.client import temporal_cli
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import build_worker

RUNBOOK = Path(__file__).resolve().parents[1] / "runbooks" / "employee-telemetry.yaml"
COMMANDER = Actor(id="carol", roles=["incident-commander"])


def settings_for(work: Path, program: str, dsn: str, pglog: Path, fleet_url: str, queue: str) -> Settings:
    return Settings(
        temporal=TemporalSettings(task_queue=queue),
        evidence=EvidenceSettings(directory=work / program / "evidence", signing_key=work / "key.pem"),
        connections={
            "telemetry-db": PostgresConnection(dsn=dsn, log_dir=pglog),  # type: ignore[arg-type]
            "telemetry-fleet": FleetConnection(url=fleet_url),
        },
    )


async def main(agents: int, runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="pausegate-bench-"))
    pglog = work / "pglog"
    admin_dsn, server = start_logging_postgres(work / "pg", pglog, keep=False)
    programs = [f"telemetry-{uuid.uuid4().hex[:8]}" for _ in range(runs + 1)]
    databases = {p: prepare_database(admin_dsn, p.replace("-", "_"), employees=50) for p in programs}
    base = load_runbook(RUNBOOK)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    # One fleet serves every copy; telemetry off so runs do not load each other's databases.
    fleet_settings = FleetSettings(programs=programs, agents=agents)
    try:
        async with serve_fleet(fleet_settings) as fleet:
            # Baseline: the three containment steps, run directly and in parallel, no workflow.
            program = programs[0]
            settings = settings_for(work, program, databases[program], pglog, fleet.url, "baseline")
            connectors = Connectors(settings)
            runbook = base.model_copy(update={"program": base.program.model_copy(update={"id": program})})
            activity_env = ActivityEnvironment()
            fleet_acts = FleetActivities(connectors.fleet)
            access_acts = AccessActivities(connectors.access, connectors.evidence_store)
            evidence_acts = EvidenceActivities(connectors.evidence_store, connectors.audit_source)
            now = datetime.now(UTC)
            key = f"{program}/baseline"
            tables = [f"{d.schema_name}.{t}" for d in runbook.datasets for t in d.tables]
            started = time.perf_counter()
            await asyncio.gather(
                activity_env.run(fleet_acts.halt_agents, HaltAgentsInput(
                    connection="telemetry-fleet", program=program, incident_id=key, reason="bench",
                    batch_size=runbook.fleet.batch_size, concurrency=runbook.fleet.concurrency)),
                activity_env.run(access_acts.contain_dataset, ContainDatasetInput(
                    pause_key=key, dataset=runbook.datasets[0])),
                *[activity_env.run(evidence_acts.snapshot_audit_source, SnapshotInput(
                    pause_key=key, program=program, source=src, segment=0, tables=tables,
                    window_start=now - timedelta(days=90), window_end=now)) for src in runbook.audit_sources],
            )
            baseline = time.perf_counter() - started
            await connectors.aclose()

            durations: list[float] = []
            client_durations: list[float] = []
            events: list[int] = []
            for program in programs[1:]:
                queue = f"bench-{program}"
                settings = settings_for(work, program, databases[program], pglog, fleet.url, queue)
                connectors = Connectors(settings)
                runbook = base.model_copy(update={"program": base.program.model_copy(update={"id": program}),
                                                  "notifications": []})
                async with build_worker(env.client, connectors, task_queue=queue):
                    t0 = time.perf_counter()
                    handle, _ = await start_pause(
                        env.client,
                        PauseRequest(program=program, reason="bench", commander=COMMANDER, runbook=runbook),
                        task_queue=queue, tuning=Tuning(),
                    )
                    while (status := await read_status(env.client, program)).state == Phase.CONTAINING:
                        await asyncio.sleep(0.02)
                    client_durations.append(time.perf_counter() - t0)
                    assert status.phase == Phase.UNDER_REVIEW, status.phase
                    c = status.containment
                    assert c.agents.halted == agents and c.contained_at and c.started_at
                    durations.append((c.contained_at - c.started_at).total_seconds())
                    events.append(len((await handle.fetch_history()).events))
                await connectors.aclose()
    finally:
        await env.shutdown()
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    median = statistics.median(client_durations)
    print(f"agents: {agents}, runs: {runs}")
    print(f"time to contain (workflow clock), s: {', '.join(f'{d:.2f}' for d in durations)}")
    print(f"time to contain (client, start to UNDER_REVIEW), s: {', '.join(f'{d:.2f}' for d in client_durations)}")
    print(f"median time to contain: {median:.2f} s")
    print(f"baseline (same activities, no workflow): {baseline:.2f} s; ratio {median / baseline:.2f}x")
    print(f"history events at containment: {', '.join(map(str, events))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.runs))
