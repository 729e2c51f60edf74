"""Ambiguous success: the fleet and PostgreSQL apply a change and then fail to answer, in 10% of calls.

Pause after pause on one program, each contained, reviewed and resumed: every change must be applied
exactly once as the target sees it, and each pause must end with the narrowed access and all agents
collecting again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.worker import Worker

from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.models.phase import Phase
from pausegate.models.state import Tuning
from pausegate.reference.fleet.settings import FaultSettings
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.faults.support import database_of, fleet_effects, fleet_faults, settled_pg_statements
from tests.faults.test_crash_sweep import approve
from tests.faults.worker_proc import FaultConnectors
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.workflows.test_lifecycle import can_read

RATE = 0.1
PAUSES = 8
AGENTS = 100
TUNING = Tuning(halt_retry_initial_seconds=0.2, halt_retry_max_seconds=1.0, activity_heartbeat_seconds=5.0)


@pytest.mark.slow
async def test_changes_answered_by_a_timeout_are_applied_once(
    make_harness: HarnessFactory, pglog: Path
) -> None:
    # "hang" past the connector's 2 s timeout: the change is made, the client sees a timeout.
    faults = FaultSettings(latency_ms=0, jitter_ms=0, ambiguous_rate=RATE, ambiguous_mode="hang",
                           ambiguous_hang_ms=3_000, seed=7)
    async with make_harness(agents=AGENTS, tuning=TUNING, faults=faults, run_worker=False) as h:
        fleet_conn = h.settings.connections["telemetry-fleet"].model_copy(update={"timeout_seconds": 2.0})
        settings = h.settings.model_copy(update={"connections": {**h.settings.connections,
                                                                 "telemetry-fleet": fleet_conn}})
        connectors = FaultConnectors(settings, ambiguous_rate=RATE, seed=3)
        worker: Worker = build_worker(h.client, connectors, task_queue=h.task_queue)
        spec = h.runbook.datasets[0]
        database = database_of(h)
        planned_total = 0
        keys: set[tuple[str, str | None]] = set()
        try:
            async with worker, build_urgent_worker(h.client, connectors):
                before = await settled_pg_statements(pglog, database)
                for n in range(1, PAUSES + 1):
                    planned_total += sum(
                        1 for _, text in await PostgresAccess(h.database_dsn).planned_revoke(spec)
                        if text.upper().startswith("REVOKE")
                    )
                    handle, started = await h.pause(reason=f"leak found again ({n})")
                    assert started
                    await h.wait_for_state(Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL, timeout=60)
                    fleet = fleet_effects(h)
                    assert fleet.switch_changes == 2 * n - 1, "a switch-off applied twice"
                    assert fleet.collecting == 0
                    assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
                    await approve(h)
                    final = await handle.result()
                    assert final.phase == Phase.RESUMED
                    # pauses seconds apart, or within one second, never share evidence or an incident id
                    keys.add((final.incident_id, final.evidence_key))
                    assert final.report is not None and final.report.uri.startswith(f"evidence://{final.evidence_key}/")
                    fleet = fleet_effects(h)
                    assert fleet.switch_changes == 2 * n, "a switch-on applied twice"
                    assert fleet.collecting == AGENTS
                    trainer = h.dsn_as("ml_trainer")
                    assert can_read(trainer, "keystrokes", "key_code")
                    assert not can_read(trainer, "keystrokes", "typed_content")
                    assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
                after = await settled_pg_statements(pglog, database)
        finally:
            await connectors.aclose()
        # Each REVOKE PostgreSQL ran was planned from a live catalog once: none repeated after an
        # ambiguous commit.
        assert after["REVOKE"] - before["REVOKE"] == planned_total
        assert len({i for i, _ in keys}) == len({k for _, k in keys}) == PAUSES
        fleet_injected = fleet_faults(h).injected["ambiguous"]
        pg_injected = sum(v for k, v in connectors.faulty["telemetry-db"].injected.items() if k.startswith("ambiguous"))
        assert fleet_effects(h).max_halts_per_agent <= PAUSES and fleet_effects(h).max_resumes_per_agent <= PAUSES
        calls = connectors.faulty["telemetry-db"].calls
        assert fleet_injected >= 1 and pg_injected >= 1, (fleet_injected, pg_injected)
        outcome = f"{PAUSES} pauses RESUMED; switch applied exactly 2x per pause; REVOKE run {planned_total}/" \
                  f"{planned_total} planned; narrowed access each time"
        record_result("fleet applies, then times out (10%)", f"{PAUSES} pause/resume cycles",
                      injected=fleet_injected, outcome=outcome,
                      fleet_requests=sum(fleet_faults(h).requests[op] for op in ("switch", "halt", "resume")))
        record_result("PostgreSQL commits, then the answer is lost (10%)", f"{PAUSES} pause/resume cycles",
                      injected=pg_injected, outcome=outcome,
                      revoke_calls=calls["revoke"], restore_calls=calls["restore"])
