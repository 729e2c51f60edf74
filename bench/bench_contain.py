"""Time to contain the worked example, against the same steps run without a workflow, in one run.

Each run pauses a fresh copy of the program (its own fleet, database and evidence directory) on
the real stack: Temporal dev server, PostgreSQL, the reference fleet in a process of its own with
its default latency and its agents writing telemetry, the workers as the embedded stack runs them
(the workflows in this process, the urgent and the proof steps each in a process of its own), history
encryption on (the embedded default). The baseline runs every activity the workflow runs, the same
functions wired the same way (``activities_by_name``), directly (``ActivityEnvironment``: no server, no
workflow; the halt in a process of its own, as the urgent worker is, the rest in this process) on
another fresh copy beside each run, in the workflow's order: the halt, then the check that no row was
collected after the switch; ``revoke_dataset`` then ``verify_dataset``; the sources sealed one after
another up to the pause and the rest of the window once access is gone, then the origins of the
exposure, who saw what, finding the copies and containing them. Each arm is warmed up once, uncounted,
and the product's worker processes, started for each run, contain another program first, as a
deployment's long-running workers are warm.
Both arms are timed by this client from the moment it asks (for the pause, the start call and the
first task's dispatch included), so the ratios are the cost of durable orchestration:

* fully contained: from the start call to the client seeing the pause past CONTAINING (every agent
  confirmed, access revoked and verified, evidence sealed, who saw what), against the baseline's
  whole run;
* switch off, access gone and access verified: when the fleet turned the switch off, when the revoke
  committed and when it was verified, from the same start, against the same moments in the baseline.

It also checks the pause at scale: the fleet reports every agent halted and the dataset holds no
telemetry row collected after the switch went off; and reports the peak RSS of the urgent worker,
of this process (worker and client) and of the fleet.

    PYTHONPATH=. python bench/bench_contain.py [--agents 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import psycopg
from temporalio.testing import ActivityEnvironment

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
from pausegate.models.access import DatasetRevoked
from pausegate.models.copies import ContainPauseCopiesInput, CopiesSummary, FindPauseCopiesInput
from pausegate.models.origins import DeriveOriginsInput, OriginSummary
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.runbook import AuditSourceSpec
from pausegate.models.state import PauseState, Tuning
from pausegate.models.steps import ContainDatasetInput, ExposureReportInput, SnapshotInput, VerifyDatasetInput
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import activities_by_name


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


@dataclass
class Marks:
    """Seconds from the client asking to each moment of containment, in one run of either arm."""

    switch: float
    access: float
    verified: float
    total: float


async def baseline(w: World, agents: int) -> Marks:
    """The activities the workflow runs, run directly, in parallel as the workflow runs them."""
    program = new_program()
    database = w.database(program)
    async with fleet_process([program], agents=agents, work=w.work, telemetry_dsn=writer_dsn(database)) as fleet:
        settings = w.settings(queue="baseline", databases={"telemetry-db": database}, fleet_url=fleet.url)
        connectors = Connectors(settings)
        runbook = runbook_for(program)
        env = ActivityEnvironment()
        step = activities_by_name(w.client, connectors)
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
            # the halter ran the data-stop check too, once every agent was confirmed, as the workflow does
            marks["switch"] = (datetime.fromisoformat(answer["switch_off_at"]) - now).total_seconds()

        revoked = asyncio.Event()

        async def revoke_then_verify() -> None:
            # as the workflow does: cut access (the urgent step), then derive the scope and verify
            gone: DatasetRevoked = await env.run(step["revoke_dataset"],
                                                 ContainDatasetInput(pause_key=key, dataset=spec))
            marks["access"] = time.perf_counter() - started
            revoked.set()
            checked = await env.run(step["verify_dataset"],
                                    VerifyDatasetInput(pause_key=key, dataset=spec, revoked=gone))
            assert checked.verified, checked.residual
            marks["verified"] = time.perf_counter() - started

        async def seal() -> None:
            # in the workflow's order: sources one after another up to the pause, the rest once access
            # is gone, then the origins, who saw what from the database's records, the copies
            def snapshot(src: AuditSourceSpec, segment: int, start: datetime, end: datetime) -> SnapshotInput:
                return SnapshotInput(pause_key=key, program=program, source=src, segment=segment, tables=tables,
                                     window_start=start, window_end=end, datasets=list(runbook.datasets))
            window_start = runbook.exposure.start or (now - runbook.exposure.lookback)
            # who saw what, the origins and the copies read every sealed segment of the database's log,
            # the window up to the pause and the rest of it, as the workflow hands them
            bundles = []
            for src in runbook.audit_sources:
                result = await env.run(step["snapshot_audit_source"], snapshot(src, 0, window_start, now))
                if src.kind == "postgres_log":
                    bundles.append(result.bundle.key)
            await revoked.wait()
            revoked_at = datetime.now(UTC)
            for src in runbook.audit_sources:
                result = await env.run(step["snapshot_audit_source"], snapshot(src, 1, now, revoked_at))
                if src.kind == "postgres_log":
                    bundles.append(result.bundle.key)
            logs = [a for a in runbook.audit_sources if a.kind == "postgres_log"]
            origins: OriginSummary = await env.run(step["derive_origins"], DeriveOriginsInput(
                pause_key=key, program=program, datasets=list(runbook.datasets), log_sources=logs, bundles=bundles,
                window_start=window_start, window_end=revoked_at,
                intended_roles=list(runbook.resume_policy.allowed_grantee_roles or ())))
            await env.run(step["exposure_report"], ExposureReportInput(
                pause_key=key, bundles=bundles, datasets=list(runbook.datasets), window_start=window_start,
                window_end=revoked_at, statement_budget=runbook.exposure.statement_budget,
                origins=origins.document))
            found: CopiesSummary = await env.run(step["find_pause_copies"], FindPauseCopiesInput(
                pause_key=key, bundles=bundles, datasets=list(runbook.datasets), window_start=window_start,
                window_end=revoked_at, paused_at=now, program=program, log_sources=logs))
            held: CopiesSummary = await env.run(step["contain_pause_copies"], ContainPauseCopiesInput(
                pause_key=key, found=found.document, datasets=list(runbook.datasets)))
            assert not held.uncontained, held.uncontained

        now = datetime.now(UTC)
        started = time.perf_counter()
        await asyncio.gather(halt(), revoke_then_verify(), seal())
        total = time.perf_counter() - started
        await halter.wait()  # its interpreter's exit is not part of the baseline
        await connectors.aclose()
    return Marks(switch=marks["switch"], access=marks["access"], verified=marks["verified"], total=total)


def after(status: PauseState, action: str, asked: datetime) -> float:
    """Seconds from the client asking to the timeline's first ``action``."""
    at = next(e.at for e in status.timeline if e.action == action)
    return (at - asked).total_seconds()


@dataclass
class Run:
    marks: Marks
    events: int
    rss: tuple[float, float, float, float]
    check: str


async def product(w: World, agents: int) -> Run:
    """One pause on the stack, timed from the client's start call to it seeing the pause contained.

    The workers are started for the run and warmed up first, as a deployment's long-running workers
    are (the baseline runs in this warm process): a pause of another program of the same fleet, with
    a database of its own, is contained before the timed one begins."""
    program, warm = new_program(), new_program()
    database, warm_database = w.database(program), w.database(warm)
    queue = f"bench-{program}"
    async with fleet_process([program, warm], agents=agents, work=w.work,
                             telemetry_dsn=writer_dsn(database)) as fleet:
        settings = w.settings(queue=queue, databases={"telemetry-db": database, "warm-db": warm_database},
                              fleet_url=fleet.url)
        connectors = Connectors(settings)
        async with w.stack_workers(settings, connectors) as workers:
            await start_pause(w.client, PauseRequest(program=warm, reason="warm-up", commander=COMMANDER,
                                                     runbook=runbook_for(warm, connection="warm-db")),
                              task_queue=queue, tuning=Tuning())
            while (await read_status(w.client, warm)).phase == Phase.CONTAINING:
                await asyncio.sleep(0.05)
            # telemetry flowing before the pause, so that its stop is a measurement
            before = (await fleet_counts(fleet, program))["rows_written"]
            while (await fleet_counts(fleet, program))["rows_written"] == before:
                await asyncio.sleep(0.1)
            for pid in (workers.urgent.pid, workers.proof.pid, fleet.pid, None):
                reset_peak_rss(pid)
            request = PauseRequest(program=program, reason="bench", commander=COMMANDER, runbook=runbook_for(program))
            asked = datetime.now(UTC)
            t0 = time.perf_counter()
            handle, _ = await start_pause(w.client, request, task_queue=queue, tuning=Tuning())
            while (status := await read_status(w.client, program)).phase == Phase.CONTAINING:
                await asyncio.sleep(0.02)
            total = time.perf_counter() - t0
            rss = (peak_rss_mib(workers.urgent.pid), peak_rss_mib(workers.proof.pid), peak_rss_mib(),
                   peak_rss_mib(fleet.pid))
            assert status.phase == Phase.UNDER_REVIEW, status.phase
            c = status.containment
            assert c.agents.halted == agents and c.contained_at and c.agents.switch_off_at
            marks = Marks(switch=(c.agents.switch_off_at - asked).total_seconds(),
                          access=after(status, "containment.dataset.access_gone", asked),
                          verified=after(status, "containment.dataset.revoked", asked), total=total)
            events = len((await handle.fetch_history()).events)
            # correctness at scale: the fleet's count, and the dataset asked again now
            counts = await fleet_counts(fleet, program)
            assert counts["halted"] == agents and counts["collecting"] == 0, counts
            assert c.data_stop is not None and c.data_stop.rows_after == 0, c.data_stop
            later = rows_after(database, c.agents.switch_off_at)
            assert later == 0, later
            check = f"{counts['halted']}/{agents} halted, {counts['rows_written']} rows before, {later} after"
        await connectors.aclose()
    return Run(marks, events, rss, check)


def spread(values: list[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


async def main(agents: int, runs: int) -> None:
    async with world() as w:
        # warm-up of both arms (imports, first connections, the server's caches); not counted
        await baseline(w, agents)
        await product(w, agents)
        bases: list[Marks] = []
        done: list[Run] = []
        for n in range(runs):
            # a baseline beside every run, so both see the machine as it is then; which goes first
            # alternates, since the statement log every seal and search reads grows with each arm's run
            if n % 2:
                done.append(await product(w, agents))
                bases.append(await baseline(w, agents))
            else:
                bases.append(await baseline(w, agents))
                done.append(await product(w, agents))

    def median(marks: list[Marks], field: str) -> float:
        return statistics.median(getattr(m, field) for m in marks)

    ours = [r.marks for r in done]
    print(f"agents: {agents}, runs: {runs} (each arm warmed up once, their order alternating; timed by the client, "
          "start call included)")
    print(f"time to contain (client, start call to UNDER_REVIEW), s: {spread([m.total for m in ours])}")
    print(f"switch off after, s: {spread([m.switch for m in ours], 3)}")
    print(f"access gone after, s: {spread([m.access for m in ours], 3)}")
    print(f"access verified after, s: {spread([m.verified for m in ours], 3)}")
    print(f"fleet after each pause: {'; '.join(r.check for r in done)} (every agent halted, no row after the switch)")
    print("peak RSS MiB (urgent worker / proof worker / workflows and client / fleet): "
          + "; ".join(" / ".join(f"{v:.0f}" for v in r.rss) for r in done))
    total, base_total = median(ours, "total"), median(bases, "total")
    print(f"median time to contain: {total:.2f} s")
    print(f"orchestration overhead: {(total - base_total) * 1000:.0f} ms")
    for name, field in (("switch off", "switch"), ("access gone", "access"), ("access verified", "verified")):
        ours_m, base_m = median(ours, field), median(bases, field)
        print(f"{name}: median {ours_m:.3f} s, baseline {base_m:.3f} s; ratio {ours_m / base_m:.2f}x")
    print(f"baseline (every step the workflow runs, no workflow), s: {spread([b.total for b in bases])}")
    print(f"baseline (same activities, no workflow): {base_total:.2f} s; ratio {total / base_total:.2f}x")
    print(f"history events at containment: {', '.join(str(r.events) for r in done)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.runs))
