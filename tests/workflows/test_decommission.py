"""Leadership may end the program for good by quorum: it stays contained and the pause closes with a report."""

from __future__ import annotations

from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.updates import DecommissionInput
from tests.support.harness import CISO, CTO, Harness
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_lifecycle import can_read
from tests.workflows.test_refusals import refused


class TestDecommission:
    async def test_a_quorum_decommissions_and_nothing_is_resumed(self, harness: Harness) -> None:
        h = harness
        commander = Actor(id="carol", roles=["incident-commander", "cto"])
        handle, _ = await h.pause(commander=commander)
        await h.wait_for_state(Phase.UNDER_REVIEW)
        await refused(h, DecommissionInput(actor=commander, role="cto", reason="end it"), "separation_of_duties")
        await h.act(DecommissionInput(actor=CISO, role="ciso", reason="consent cannot be obtained"))
        await refused(h, DecommissionInput(actor=CISO, role="ciso", reason="again"), "duplicate_approval")
        await h.act(DecommissionInput(actor=CTO, role="cto", reason="no business case left"))
        final: PauseState = await handle.result()
        assert final.phase == Phase.DECOMMISSIONED and final.report is not None
        assert not h.fleet_state.program(h.program).switch.enabled
        assert not can_read(h.dsn_as("employee_0001"), "mouse_events")
        report = h.connectors.evidence_store.read_json(final.report.uri.removeprefix("evidence://"))
        assert report["status"]["state"] == "DECOMMISSIONED" and report["resume"] is None
        await replay_and_maybe_record(handle, "decommissioned")
