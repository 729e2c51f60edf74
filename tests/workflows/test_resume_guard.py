"""Before resuming, containment is checked again: drift since containment refuses the resume."""

from __future__ import annotations

import httpx
import psycopg

from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.updates import ApproveInput, ProposePlanInput
from tests.support.harness import CISO, COMMANDER, CPO, Harness
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_lifecycle import NARROWED_PLAN, can_read, complete_review


async def approve(h: Harness) -> PauseState:
    status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
    assert status.approval_digest
    await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
    await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))
    return status


class TestResumeGuard:
    async def test_a_reopened_grant_and_a_switched_on_program_refuse_the_resume(self, harness: Harness) -> None:
        h = harness
        handle, _ = await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
        await h.wait_for_state(Phase.AWAITING_APPROVAL)

        # Drift while leadership reviews: someone re-grants the leak and switches collection back on.
        with psycopg.connect(h.database_dsn, autocommit=True) as conn:
            conn.execute("GRANT USAGE ON SCHEMA telemetry TO all_employees")
            conn.execute("GRANT SELECT ON telemetry.keystrokes TO all_employees")
        async with httpx.AsyncClient(base_url=h.fleet.url) as fleet:
            response = await fleet.put(f"/v1/programs/{h.program}/switch",
                                       json={"enabled": True, "incident_id": "drift", "reason": "oops"})
            response.raise_for_status()
        assert can_read(h.dsn_as("employee_0001"), "keystrokes")

        first = await approve(h)
        status = await h.wait_for(
            lambda s: any(e.action == "resume.refused" for e in s.timeline), what="resume refused"
        )
        refusal = next(e for e in status.timeline if e.action == "resume.refused")
        assert "switch is on" in refusal.detail and "telemetry" in refusal.detail

        # Contained again: the grant is gone, the switch is off, approvals must be given again.
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        assert status.approvals == []
        assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
        assert not h.fleet_state.program(h.program).switch.enabled
        assert status.approval_digest == first.approval_digest  # same plan, same review

        await approve(h)
        final = await h.wait_for_state(Phase.RESUMED)
        assert final.phase == Phase.RESUMED
        assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
        await handle.result()
        await replay_and_maybe_record(handle, "resume-refused-on-drift")
