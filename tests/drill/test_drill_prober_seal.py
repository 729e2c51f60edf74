"""The prober's figures are taken only sealed and addressed: figures sent straight to Temporal (a bare
signal, a copy of the prober's report sent again under another update id or addressed to another drill)
are refused on the drill's timeline and never shown in its report as measured; sent by someone without
the history key, they open as nothing the worker reads (``pausegate.temporal.codec``): rejected or
dropped, and the drill goes on to its restore."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from pausegate.models.drill import PROBER_SEALED, DrillPhase, ProberFigures, ProberReport
from pausegate.models.seals import SealedFor
from pausegate.temporal.drills import drill_id
from pausegate.temporal.sealing import addressed_update
from tests.drill.support import drill, drill_runbook, probing, wait_phase
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.temporal.test_history_encryption import without_codec
from workflows.drill import PROBE_REFUSED, DrillWorkflow

FORGED = ProberFigures(probes=1, switch_off_seconds=0.001, access_gone_seconds=0.001, restored_seconds=0.002)
"""Too good to be true: what a forger would like the report to say."""


class TestForgedProberFigures:
    async def test_figures_that_did_not_come_sealed_for_the_drill_are_refused_and_the_probers_are_kept(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            runbook = drill_runbook(h, hold=timedelta(seconds=5))
            async with probing(h, runbook, tmp_path / "probes.jsonl") as prober:
                handle = await drill(h, runbook)
                await wait_phase(h, DrillPhase.HOLDING)
                workflow_id = drill_id(h.client, h.program)
                # 1. a bare signal, sealed by a key holder (as the old prober sent it): addressed to no drill
                await handle.signal(DrillWorkflow.prober_figures, FORGED)
                # 2. the prober's report addressed to this drill, sent again under another update id
                pinned, report = await addressed_update(h.client, workflow_id, ProberReport(figures=FORGED,
                                                        by="mallory"), "probe-copy-1", missing="no drill")
                with pytest.raises(WorkflowUpdateFailedError) as refused:
                    await pinned.execute_update(DrillWorkflow.report_probe, report, id="probe-copy-2")
                assert getattr(refused.value.cause, "type", None) == PROBE_REFUSED
                # 3. addressed to an earlier drill of the program (another run)
                earlier = report.model_copy(update={"sealed_for": SealedFor(
                    namespace=h.client.namespace, workflow_id=workflow_id, pause_chain="an-earlier-drill",
                    update_id="probe-copy-3")})
                with pytest.raises(WorkflowUpdateFailedError):
                    await pinned.execute_update(DrillWorkflow.report_probe, earlier, id="probe-copy-3")
                # 4. without the keys: an unsealed update is rejected, an unsealed signal dropped; neither
                #    holds the drill (its restore below runs)
                keyless = without_codec(h.client).get_workflow_handle(workflow_id)
                with pytest.raises(WorkflowUpdateFailedError):
                    await keyless.execute_update("report_probe", report.model_dump(mode="json"), id="probe-copy-4")
                await keyless.signal("prober_figures", FORGED.model_dump(mode="json"))
                final = await handle.result()
                figures = await prober

        refusals = [e for e in final.timeline if e.action == "drill.prober.refused"]
        assert len(refusals) == 3 and not any(e.accepted for e in refusals)
        assert "bare signal" in refusals[0].detail and "mallory" in refusals[1].detail
        assert final.prober_refused == 3
        # the report shows the prober's own figures, and how they came
        assert final.prober is not None and final.prober == figures and final.prober != FORGED
        assert final.prober_via is not None and final.prober_via.startswith(PROBER_SEALED)
        assert "prober@" in final.prober_via
        assert final.phase == DrillPhase.RESTORED
        record_result("forged prober figures", "figures sent straight to Temporal: by a key holder a bare "
                      "signal, a copy under a new update id, one addressed to another drill; without the key an "
                      "update and a signal", injected=5,
                      outcome="none shown as measured; each refused on the drill's timeline; the prober's own "
                      "figures in the report, labelled as sealed and from the prober; the keyless update rejected, the "
                      "signal dropped, the drill restored")
