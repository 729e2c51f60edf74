"""A drill on the real stack: the canary contained, nothing else touched, restored equal to the snapshot,
timed by the prober from outside."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import yaml
from temporalio.testing import WorkflowEnvironment

from pausegate.config import TemporalSettings, dump_settings
from pausegate.connectors.postgres.canary_restore import restore_canary_on
from pausegate.evidence.layout import catalog_key
from pausegate.models.drill import DRILL_LABEL, DrillOutcome, DrillPhase, ProberFigures
from pausegate.models.fleet import AgentState
from tests.drill.support import agent_states, catalog, drill, drill_runbook, probing, raw_acls, reads
from tests.faults.support import until
from tests.support.harness import HarnessFactory
from tests.support.histories import replay_and_maybe_record


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
            # the audit sources practised too: each sealed under the drill's own key
            assert len(final.evidence) == len(runbook.audit_sources) > 0
            assert all(f"/{final.drill_key}/audit/" in ref.uri for ref in final.evidence)
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
            await replay_and_maybe_record(handle, "drill-restored")


class TestProberProcess:
    async def test_the_prober_runs_as_a_process_of_its_own_and_its_figures_reach_the_report(
        self, make_harness: HarnessFactory, temporal_env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h)
            address = str(temporal_env.client.service_client.config.target_host)
            config = tmp_path / "prober.toml"
            config.write_text(dump_settings(h.settings.model_copy(
                update={"temporal": TemporalSettings(address=address, task_queue=h.task_queue)})))
            runbook_file = tmp_path / "runbook.yaml"
            runbook_file.write_text(yaml.safe_dump(runbook.model_dump(mode="json", by_alias=True, exclude_none=True)))
            ready, out = tmp_path / "prober.ready", tmp_path / "probes.jsonl"
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pausegate.drill.prober", "--config", str(config), "--runbook", str(runbook_file),
                "--out", str(out), "--ready", str(ready), "--timeout", "120",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            try:
                await until(lambda: ready.exists() or process.returncode is not None, timeout=60,
                            what="the prober's baseline")
                assert process.returncode is None, "the prober exited before the drill"
                final = await (await drill(h, runbook)).result()
                stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()

        assert process.returncode == 0
        figures = ProberFigures.model_validate_json(stdout.decode().strip().splitlines()[-1])
        assert figures.outside_changes == [] and figures.restored_seconds is not None
        assert final.prober == figures and final.outcome == DrillOutcome.COMPLETED
