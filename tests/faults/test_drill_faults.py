"""A drill's restore survives the worst: the worker killed (-9) during CONTAINING, and the whole stack (the
worker and the Temporal server) killed and started again. Either way the canary ends equal to its
snapshot and its agents collect."""

from __future__ import annotations

from pathlib import Path

import pytest

from pausegate.models.drill import DrillOutcome, DrillPhase
from pausegate.models.fleet import AgentState
from pausegate.models.state import Tuning
from pausegate.temporal.drills import read_drill
from tests.drill.support import agent_states, catalog, drill, drill_runbook, reads, wait_phase
from tests.faults.support import WorkerProcess, until
from tests.faults.test_server_restart import sqlite_server
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory, pause_harness

TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=2.0, activity_heartbeat_seconds=1.5,
                workflow_task_timeout_seconds=2.0)
CANARY = ("agent-00001", "agent-00002", "agent-00003")
WAIT = 90.0  # only so that a drill that never restores fails instead of hanging


@pytest.mark.slow
async def test_a_worker_killed_during_containing_still_restores_the_canary(
    make_harness: HarnessFactory, temporal_address: str, tmp_path: Path
) -> None:
    async with make_harness(agents=20, tuning=TUNING, run_worker=False) as h:
        runbook = drill_runbook(h)
        before = await catalog(h, runbook)
        w = WorkerProcess(h, temporal_address, tmp_path / "worker")
        try:
            await w.start(hold=["after:revoke"])
            handle = await drill(h, runbook, await_prober=False)
            await until(lambda: w.marker("after:revoke"), timeout=30, what="the canary's revoke to commit")
            assert (await read_drill(h.client, h.program)).phase == DrillPhase.CONTAINING
            w.kill()
            assert not reads(h, "telemetry_canary_reader", "telemetry_canary.keystrokes")
            await w.start()
            final = await handle.result(rpc_timeout=None)
        finally:
            w.stop()
        after, states = await catalog(h, runbook), agent_states(h)

    assert final.phase == DrillPhase.RESTORED and final.outcome == DrillOutcome.COMPLETED
    assert final.restore is not None and final.restore.equal and after == before
    assert all(states[a] == AgentState.COLLECTING for a in CANARY)
    record_result("Worker killed (SIGKILL) during a drill", "after the canary's revoke committed, in CONTAINING",
                  injected=1, outcome=f"RESTORED; {final.restore.compared} catalog entries equal to the snapshot; "
                                      f"{len(CANARY)} canary agents collecting")


@pytest.mark.slow
async def test_the_whole_stack_killed_and_restarted_during_a_drill_still_restores_the_canary(
    postgres: tuple[str, Path], tmp_path: Path
) -> None:
    dsn, pglog = postgres
    async with sqlite_server(tmp_path / "temporal.sqlite") as (server, client), \
            pause_harness(client, dsn, pglog, tmp_path, agents=20, tuning=TUNING, run_worker=False) as h:
        runbook = drill_runbook(h)
        before = await catalog(h, runbook)
        w = WorkerProcess(h, f"127.0.0.1:{server.port}", tmp_path / "worker")
        try:
            await w.start(hold=["after:revoke"])
            handle = await drill(h, runbook, await_prober=False)
            await until(lambda: w.marker("after:revoke"), timeout=30, what="the canary's revoke to commit")
            w.kill()
            await server.restart()
            await w.start()
            await wait_phase(h, DrillPhase.RESTORED, timeout=WAIT)
            final = await handle.result(rpc_timeout=None)
        finally:
            w.stop()
        after, states = await catalog(h, runbook), agent_states(h)

    assert final.outcome == DrillOutcome.COMPLETED and final.restore is not None and final.restore.equal
    assert after == before
    assert all(states[a] == AgentState.COLLECTING for a in CANARY)
    record_result("Whole stack killed during a drill", "worker SIGKILL and Temporal server (SQLite) restarted "
                  "after the canary's revoke committed", injected=2,
                  outcome=f"RESTORED; {final.restore.compared} catalog entries equal to the snapshot; "
                          f"{len(CANARY)} canary agents collecting")
