"""Configuration mistakes never stop the kill switch, and a plan that cannot be applied never fails a pause."""

from __future__ import annotations

import psycopg
import pytest

from pausegate.config import PostgresConnection
from pausegate.errors import ActionRefused, TargetRejectedError
from pausegate.models.access import GrantSpec
from pausegate.models.fleet import SwitchRequest, SwitchState
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.updates import ApproveInput, ProposePlanInput, RetryStepInput, WaiveStepInput
from tests.support.fault_report import record_result
from tests.support.harness import ANALYST, CISO, COMMANDER, CPO, Harness
from tests.workflows.test_lifecycle import NARROWED_PLAN, can_read, complete_review

STEP = "containment.dataset.telemetry"


class TestUnknownConnection:
    async def test_the_rest_is_contained_the_step_is_blocked_and_runs_when_the_commander_asks(
        self, harness: Harness
    ) -> None:
        h = harness
        [dataset] = h.runbook.datasets
        h.runbook = h.runbook.model_copy(update={"datasets": [dataset.model_copy(update={"connection": "late-db"})]})
        await h.pause()

        status = await h.wait_for(lambda s: any(b.step == STEP for b in s.containment.blocked), what="blocked")
        [blocked] = status.containment.blocked
        assert "UnknownConnectionError" in blocked.reason and "late-db" in blocked.reason
        # Everything else carried on: the agents are halted and the evidence before the pause is sealed.
        sources = {a.name for a in h.runbook.audit_sources}
        status = await h.wait_for(lambda s: s.containment.agents.confirmed
                                  and {e.source for e in s.containment.evidence} == sources,
                                  what="agents halted and the evidence before the pause sealed")
        assert status.phase == Phase.CONTAINING and STEP in {b.step for b in status.containment.blocked}
        assert [e.action for e in status.timeline].count(f"{STEP}.blocked") == 1
        await h.eventually(lambda: any("blocked" in m.text and "late-db" in m.text
                                       for m in h.chat.sink.received("security")), what="webhook told")
        assert can_read(h.dsn_as("employee_0001"), "keystrokes")  # not contained yet: nothing pretends it is

        # Only a commander decides, and only on a step that is blocked.
        with pytest.raises(ActionRefused) as refused:
            await h.act(RetryStepInput(actor=ANALYST, step=STEP))
        assert refused.value.code == "wrong_role"
        with pytest.raises(ActionRefused) as refused:
            await h.act(RetryStepInput(actor=COMMANDER, step="containment.dataset.other"))
        assert refused.value.code == "not_blocked"

        # The configuration is fixed (a worker restart would do the same), then the commander retries.
        h.settings.connections["late-db"] = PostgresConnection(dsn=h.database_dsn)  # type: ignore[arg-type]
        await h.act(RetryStepInput(actor=COMMANDER, step=STEP))
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.containment.blocked == [] and status.containment.access_revoked
        assert not can_read(h.dsn_as("employee_0001"), "keystrokes")
        record_result("runbook names a connection the deployment lacks", "pause, fix the configuration, retry",
                      injected=1, outcome="agents halted and evidence sealed meanwhile; the dataset step blocked "
                      "(timeline, status, webhook), not retried; contained once the commander retried")

    async def test_a_waived_step_settles_containment_without_counting_as_revoked(self, harness: Harness) -> None:
        h = harness
        [dataset] = h.runbook.datasets
        h.runbook = h.runbook.model_copy(update={"datasets": [dataset.model_copy(update={"connection": "late-db"})]})
        await h.pause()
        await h.wait_for(lambda s: any(b.step == STEP for b in s.containment.blocked), what="blocked")
        await h.act(WaiveStepInput(actor=COMMANDER, step=STEP, reason="dataset moved; revoked by hand, ticket 42"))
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert STEP in status.containment.waived_steps and not status.containment.access_revoked
        waived = next(e for e in status.timeline if e.action == f"{STEP}.waived")
        assert waived.actor == COMMANDER.id and "ticket 42" in waived.detail


class TestPlansThatCannotBeApplied:
    async def test_a_plan_naming_a_missing_role_or_column_is_refused_at_proposal(self, harness: Harness) -> None:
        h = harness
        # The runbook allows a grantee that the database does not have (a typo, or a role since dropped).
        policy = h.runbook.resume_policy
        h.runbook = h.runbook.model_copy(update={"resume_policy": policy.model_copy(
            update={"allowed_grantee_roles": [*policy.allowed_grantee_roles, "ghost_role"]})})
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        before = await h.status()
        for grant, expected in [
            (GrantSpec(dataset="telemetry", role="ghost_role", table="keystrokes", privileges=["SELECT"]),
             "role 'ghost_role' does not exist"),
            (GrantSpec(dataset="telemetry", role="telemetry_analysts", table="keystrokes", privileges=["SELECT"],
                       columns=["no_such_column"]), "keystrokes has no column no_such_column"),
        ]:
            with pytest.raises(ActionRefused) as refused:
                await h.act(ProposePlanInput(actor=COMMANDER, plan=ResumePlan(grants=[grant])))
            assert refused.value.code == "invalid_plan" and expected in refused.value.reason
        after = await h.status()
        assert after.plan is None and before.plan is None and after.phase == Phase.UNDER_REVIEW
        record_result("plan names a missing role or column", "propose", injected=2,
                      outcome="refused at proposal with the reason; no plan recorded")

    async def test_a_failure_during_resume_is_undone_and_the_pause_returns_to_review(self, harness: Harness) -> None:
        h = harness
        handle, _ = await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)

        # The fleet refuses to switch the program on once the grants are restored: they must not stay.
        fleet = h.connectors.fleet(h.runbook.fleet.connection)
        real_switch = fleet.set_switch

        async def refusing_switch(program: str, request: SwitchRequest) -> SwitchState:
            if request.enabled:
                raise TargetRejectedError("fleet answered 409: program frozen by the fleet's owners")
            return await real_switch(program, request)

        fleet.set_switch = refusing_switch  # type: ignore[method-assign]
        assert status.approval_digest
        await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
        await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))

        status = await h.wait_for(lambda s: s.resume_error is not None and s.phase == Phase.UNDER_REVIEW,
                                  what="back to review")
        actions = [e.action for e in status.timeline]
        assert actions.index("resume.grants") < actions.index("resume.failed")
        assert "program frozen" in (status.resume_error or "")
        assert status.plan is None and status.approvals == []
        assert status.containment.agents.confirmed and status.containment.access_revoked
        with psycopg.connect(h.database_dsn) as conn:
            restored = conn.execute(
                "SELECT has_table_privilege('telemetry_analysts', 'telemetry.mouse_events', 'SELECT')"
            ).fetchone()
        assert restored == (False,)  # restored by the failed resume, revoked again by containing anew
        assert not h.fleet_state.program(h.program).switch.enabled

        # The pause goes on: a plan again, approvals again, and this time the fleet resumes.
        fleet.set_switch = real_switch  # type: ignore[method-assign]
        await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN.model_copy(
            update={"agents": AgentSelection(mode="all"), "summary": "again, after the fleet thawed"})))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        assert status.approval_digest
        await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
        await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))
        final = await handle.result()
        assert final.phase == Phase.RESUMED and final.report is not None
        record_result("resume fails after grants were restored", "fleet refuses the switch", injected=1,
                      outcome="restored grants revoked again and verified, switch off, back to review; "
                      "RESUMED under a second plan with its report")
