"""Time to contain the worked example, against the same steps run without a workflow, in one run.

Each run pauses a fresh copy of the program (its own fleet, database and evidence directory) on
the real stack: Temporal dev server, PostgreSQL, the reference fleet in a process of its own with
its default latency and its agents writing telemetry, the worker in this process and the urgent
worker in a process of its own (as the embedded stack runs them). The baseline runs the same
containment activities directly (``ActivityEnvironment``: no server, no workflow; the halt in a
process of its own, as the urgent worker is, the rest in this process) on another fresh copy beside
each run (after one warm-up), in the order the workflow runs them (the sources sealed one after
another, the rest of the window once access is revoked, then who saw what), so the ratios are the
cost of durable orchestration:

* fully contained: the workflow's ``contained_at - started_at`` (every agent confirmed, access
  revoked and verified, evidence sealed, who saw what), against the baseline's whole run;
* switch off and access gone: when the fleet turned the switch off and when the revocation was
  verified, against the same moments in the baseline.

It also checks the pause at scale: the fleet reports every agent halted and the dataset holds no
telemetry row collected after the switch went off; and reports the peak RSS of the urgent worker,
of this process (worker and client) and of the fleet.

    python bench/bench_contain.py [--agents 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from activities.evidence import EvidenceActivities
from bench.world import (
    COMMANDER,
    ROOT,
    FleetProcess,
    World,
    fleet_process,
    new_program,
    peak_rss_mib,
    reset_peak_rss,
    runbook_for,
    world,
    writer_dsn,
)
from pausegate.connectors.registry import Connectors
from pausegate.models.pause import (
    ContainDatasetInput,
    ExposureReportInput,
    PauseRequest,
    PauseState,
    Phase,
    SnapshotInput,
    Tuning,
)
from pausegate.runbook.model import AuditSourceSpec
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import build_worker


def rows_after(dsn: str, at: datetime) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry.keystrokes WHERE captured_at > %(t)s)"
            " + (SELECT count(*) FROM telemetry.mouse_events WHERE captured_at > %(t)s)", {"t": at}).fetchone()
    assert row is not None
    return int(row[0])


async def fleet_counts(fleet: FleetProcess, program: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=fleet.url, timeout=60) as client:
        stats = (await client.get(f"/admin/programs/{program}/stats")).json()
    return {k: int(stats[k]) for k in ("agents", "collecting", "halted", "offline", "rows_written")}


async def baseline(w: World, agents: int) -> tuple[float, float, float]:
    """The containment activities run directly, in parallel: (switch off, access gone, all done) in s."""
    program = new_program()
    database = w.database(program)
    async with fleet_process([program], agents=agents, work=w.work, telemetry_dsn=writer_dsn(database)) as fleet:
        settings = w.settings(queue="baseline", databases={"telemetry-db": database}, fleet_url=fleet.url)
        connectors = Connectors(settings)
        runbook = runbook_for(program)
        env = ActivityEnvironment()
        access = AccessActivities(connectors.access, connectors.evidence_store)
        evidence = EvidenceActivities(connectors.evidence_store, connectors.audit_source, connectors.access)
        key = f"{program}/baseline"
        tables = [f"{d.schema_name}.{t}" for d in runbook.datasets for t in d.tables]
        spec, writes = runbook.datasets[0], runbook.fleet.writes
        assert writes is not None
        marks: dict[str, float] = {}

        # the halt in a process of its own, as the urgent worker runs it
        halter = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.baseline_halt", "--fleet", fleet.url, "--program", program,
            "--dsn", database, "--agents", str(agents), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert halter.stdin is not None and halter.stdout is not None
        assert (await halter.stdout.readline()).strip() == b"ready"

        async def halt() -> None:
            assert halter.stdin is not None and halter.stdout is not None
            halter.stdin.write(b"go\n")
            await halter.stdin.drain()
            answer = json.loads(await halter.stdout.readline())
            assert answer["rows_after"] == 0, answer
            marks["switch"] = (datetime.fromisoformat(answer["switch_off_at"]) - now).total_seconds()

        revoked = asyncio.Event()

        async def revoke() -> None:
            await env.run(access.contain_dataset, ContainDatasetInput(pause_key=key, dataset=spec))
            marks["access"] = time.perf_counter() - started
            revoked.set()

        async def seal() -> None:
            # in the workflow's order: sources one after another up to the pause, the rest once access
            # is revoked, then who saw what from the database's records
            def snapshot(src: AuditSourceSpec, segment: int, start: datetime, end: datetime) -> SnapshotInput:
                return SnapshotInput(pause_key=key, program=program, source=src, segment=segment, tables=tables,
                                     window_start=start, window_end=end, datasets=list(runbook.datasets))
            window_start = now - timedelta(days=90)
            for src in runbook.audit_sources:
                await env.run(evidence.snapshot_audit_source, snapshot(src, 0, window_start, now))
            await revoked.wait()
            revoked_at = datetime.now(UTC)
            bundles = []
            for src in runbook.audit_sources:
                result = await env.run(evidence.snapshot_audit_source, snapshot(src, 1, now, revoked_at))
                if src.kind == "postgres_log":
                    bundles.append(result.bundle.key)
            await env.run(evidence.exposure_report, ExposureReportInput(
                pause_key=key, bundles=bundles, datasets=list(runbook.datasets), window_start=window_start,
                window_end=revoked_at))

        now = datetime.now(UTC)
        started = time.perf_counter()
        await asyncio.gather(halt(), revoke(), seal())
        total = time.perf_counter() - started
        await halter.wait()  # its interpreter's exit is not part of the baseline
        await connectors.aclose()
    return marks["switch"], marks["access"], total


def access_gone(status: PauseState) -> float:
    at = next(e.at for e in status.timeline if e.action == "containment.dataset.revoked")
    assert status.containment.started_at is not None
    return (at - status.containment.started_at).total_seconds()


async def main(agents: int, runs: int) -> None:
    async with world() as w:
        await baseline(w, agents)  # warm-up: imports, first connections; not counted
        bases: list[tuple[float, float, float]] = []
        contained: list[float] = []
        client_durations: list[float] = []
        switch: list[float] = []
        access: list[float] = []
        events: list[int] = []
        rss: list[tuple[float, float, float]] = []
        checks: list[str] = []
        for _ in range(runs):
            # a baseline beside every run, so both see the machine as it is then
            bases.append(await baseline(w, agents))
            program = new_program()
            database = w.database(program)
            queue = f"bench-{program}"
            async with fleet_process([program], agents=agents, work=w.work,
                                     telemetry_dsn=writer_dsn(database)) as fleet:
                settings = w.settings(queue=queue, databases={"telemetry-db": database}, fleet_url=fleet.url)
                connectors = Connectors(settings)
                async with w.urgent_worker(settings) as urgent, build_worker(w.client, connectors):
                    # telemetry flowing before the pause, so that its stop is a measurement
                    while (await fleet_counts(fleet, program))["rows_written"] == 0:
                        await asyncio.sleep(0.1)
                    for pid in (urgent.pid, fleet.pid, None):
                        reset_peak_rss(pid)
                    t0 = time.perf_counter()
                    handle, _ = await start_pause(
                        w.client,
                        PauseRequest(program=program, reason="bench", commander=COMMANDER,
                                     runbook=runbook_for(program)),
                        task_queue=queue, tuning=Tuning(),
                    )
                    while (status := await read_status(w.client, program)).phase == Phase.CONTAINING:
                        await asyncio.sleep(0.02)
                    client_durations.append(time.perf_counter() - t0)
                    rss.append((peak_rss_mib(urgent.pid), peak_rss_mib(), peak_rss_mib(fleet.pid)))
                    assert status.phase == Phase.UNDER_REVIEW, status.phase
                    c = status.containment
                    assert c.agents.halted == agents and c.contained_at and c.started_at and c.agents.switch_off_at
                    contained.append((c.contained_at - c.started_at).total_seconds())
                    switch.append((c.agents.switch_off_at - c.started_at).total_seconds())
                    access.append(access_gone(status))
                    events.append(len((await handle.fetch_history()).events))
                    # correctness at scale: the fleet's count, and the dataset asked again now
                    counts = await fleet_counts(fleet, program)
                    assert counts["halted"] == agents and counts["collecting"] == 0, counts
                    assert c.data_stop is not None and c.data_stop.rows_after == 0, c.data_stop
                    later = rows_after(database, c.agents.switch_off_at)
                    assert later == 0, later
                    checks.append(f"{counts['halted']}/{agents} halted, {counts['rows_written']} rows before, "
                                  f"{later} after")
                await connectors.aclose()

    median = statistics.median(contained)
    base_switch, base_access, base_total = (statistics.median(b[i] for b in bases) for i in range(3))
    print(f"agents: {agents}, runs: {runs}")
    print(f"time to contain (workflow clock), s: {', '.join(f'{d:.2f}' for d in contained)}")
    print(f"time to contain (client, start to UNDER_REVIEW), s: {', '.join(f'{d:.2f}' for d in client_durations)}")
    print(f"switch off after, s: {', '.join(f'{d:.3f}' for d in switch)}")
    print(f"access gone after, s: {', '.join(f'{d:.3f}' for d in access)}")
    print(f"fleet after each pause: {'; '.join(checks)} (every agent halted, no row after the switch)")
    print("peak RSS MiB (urgent worker / worker and client / fleet): "
          + "; ".join(f"{u:.0f} / {m:.0f} / {f:.0f}" for u, m, f in rss))
    print(f"median time to contain: {median:.2f} s")
    print(f"orchestration overhead: {(median - base_total) * 1000:.0f} ms")
    print(f"switch off: median {statistics.median(switch):.3f} s, baseline {base_switch:.3f} s; "
          f"ratio {statistics.median(switch) / base_switch:.2f}x")
    print(f"access gone: median {statistics.median(access):.3f} s, baseline {base_access:.3f} s; "
          f"ratio {statistics.median(access) / base_access:.2f}x")
    print(f"baseline (same activities, no workflow), s: {', '.join(f'{b[2]:.2f}' for b in bases)}")
    print(f"baseline (same activities, no workflow): {base_total:.2f} s; ratio {median / base_total:.2f}x")
    print(f"history events at containment: {', '.join(map(str, events))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.runs))
