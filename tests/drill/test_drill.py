"""A drill on the real stack: the canary contained, nothing else touched, restored equal to the snapshot,
timed by the prober from outside."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pausegate.connectors.postgres.canary_restore import restore_canary_on
from pausegate.evidence.layout import catalog_key
from pausegate.models.drill import DRILL_LABEL, DrillOutcome, DrillPhase
from pausegate.models.fleet import AgentState
from tests.drill.support import agent_states, catalog, drill, drill_runbook, probing, raw_acls, reads
from tests.support.harness import HarnessFactory


class TestDrillEndToEnd:
    async def test_the_canary_is_contained_nothing_else_changes_and_it_is_restored_to_the_snapshot(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h)
            assert runbook.canary is not None
            canary = set(runbook.canary.agents)
            before, raw_before = await catalog(h, runbook), raw_acls(h, "telemetry_canary")
            assert reads(h, "telemetry_canary_reader", "telemetry_canary.keystrokes")
            async with probing(h, runbook, tmp_path / "probes.jsonl") as prober:
                handle = await drill(h, runbook)
                final = await handle.result()
                figures = await prober

            assert final.phase == DrillPhase.RESTORED and final.outcome == DrillOutcome.COMPLETED
            assert all(item.done_at is not None for item in final.checklist)
            # restored: equal as sets, and every ACL array holds the same items as before
            assert final.restore is not None and final.restore.equal and final.restore.statements > 0
            assert await catalog(h, runbook) == before
            assert raw_acls(h, "telemetry_canary") == raw_before
            assert reads(h, "telemetry_canary_reader", "telemetry_canary.keystrokes")
            states = agent_states(h)
            assert all(states[a] == AgentState.COLLECTING for a in canary)
            assert all(s == AgentState.COLLECTING for s in states.values())

            # timed from outside, nothing outside the canary seen to change, and reported beside the workflow's
            assert figures.outside_changes == []
            assert figures.switch_off_seconds is not None and figures.access_gone_seconds is not None
            assert figures.restored_seconds is not None
            assert figures.restored_seconds >= max(figures.switch_off_seconds, figures.access_gone_seconds)
            assert final.prober == figures
            assert final.figures.switch_off_seconds is not None and final.figures.access_gone_seconds is not None
            report = h.connectors.evidence_store.read_json(final.drill_key + "/report", final.report.sha256
                                                           if final.report else None)
            assert report["label"] == DRILL_LABEL and report["drill"]["prober"]["probes"] == figures.probes
            assert (tmp_path / "probes.jsonl").read_text().count("\n") == figures.probes

            # restoring again changes nothing: the canary already equals its snapshot
            snapshot = h.connectors.evidence_store.read_json(catalog_key(final.drill_key, "canary"),
                                                             final.snapshot.sha256 if final.snapshot else None)
            async with await psycopg.AsyncConnection.connect(h.database_dsn, autocommit=True) as conn:
                again = await restore_canary_on(conn, runbook.canary.dataset(), snapshot)
            assert again.equal and again.statements == 0 and again.compared == final.restore.compared
