"""A plan's conditions are carried out by the resume and verified before RESUMED: the narrower
collection profile, consent, and the data actions; an unknown data type is refused at proposal, and
conditions that do not hold refuse the resume like drift of containment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from pausegate.errors import ActionRefused
from pausegate.evidence.anchor import audit_evidence
from pausegate.evidence.report import render_markdown
from pausegate.models.conditions import CollectionPlan
from pausegate.models.data_actions import NullColumn
from pausegate.models.fleet import AgentState
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.state import PauseState
from pausegate.models.steps import ReportInput
from pausegate.models.updates import ProposePlanInput
from pausegate.reference.fleet.settings import FaultSettings
from tests.support.harness import COMMANDER, Harness, HarnessFactory
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_lifecycle import (
    NARROWED_PLAN,
    collected_samples,
    complete_review,
    readable_history,
    wait_for_ticks,
)
from tests.workflows.test_resume_guard import approve

NARROW = ["key_codes", "mouse_buttons", "mouse_positions"]
# Ten agents of five employees (agent n belongs to employee_000((n-1)%5+1)); employee_0004 declined
# consent in the example's consent table, so agent-00004 and agent-00009 must stay silent.
AGENTS = 10
UNCONSENTED = ["agent-00004", "agent-00009"]
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

CONDITIONED_PLAN = NARROWED_PLAN.model_copy(update={
    "agents": AgentSelection(mode="consented"),
    "collection": CollectionPlan(data_types=NARROW),
    "data_actions": [NullColumn(dataset="telemetry", table="keystrokes", column="typed_content")],
    "conditions": [],
})


def rows_since(dsn: str, since: datetime) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(typed_content), count(window_title),"
            " count(*) FILTER (WHERE employee = 'employee_0004') FROM telemetry.keystrokes WHERE captured_at >= %s",
            (since,)).fetchone()
        mouse = conn.execute("SELECT count(*) FILTER (WHERE employee = 'employee_0004') FROM telemetry.mouse_events"
                             " WHERE captured_at >= %s", (since,)).fetchone()
        typed = conn.execute("SELECT count(typed_content) FROM telemetry.keystrokes").fetchone()
    assert row is not None and mouse is not None and typed is not None
    return {"rows": row[0], "typed_content": row[1], "window_title": row[2], "unconsented": row[3] + mouse[0],
            "typed_content_ever": typed[0]}


def rows_of(dsn: str, employee: str, since: datetime) -> int:
    """Rows of one employee collected at or after ``since`` (both tables)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry.keystrokes WHERE employee = %s AND captured_at >= %s)"
            " + (SELECT count(*) FROM telemetry.mouse_events WHERE employee = %s AND captured_at >= %s)",
            (employee, since, employee, since)).fetchone()
    assert row is not None
    return int(row[0])


async def to_awaiting_approval(h: Harness, plan: ResumePlan) -> PauseState:
    await h.pause()
    await h.wait_for_state(Phase.UNDER_REVIEW)
    await complete_review(h)
    await h.act(ProposePlanInput(actor=COMMANDER, plan=plan))
    return await h.wait_for_state(Phase.AWAITING_APPROVAL)


@pytest.mark.slow
class TestResumeConditions:
    async def test_the_resume_narrows_collection_nulls_typed_content_and_leaves_unconsented_agents_halted(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=AGENTS) as h:
            await h.eventually(lambda: rows_since(h.database_dsn, EPOCH)["typed_content_ever"] > 0,
                               what="typed content collected before the pause")
            samples = collected_samples(h.database_dsn)
            await to_awaiting_approval(h, CONDITIONED_PLAN)
            program = h.fleet_state.program(h.program)
            # One of the unconsented agents is offline when the resume runs: halted when it returns.
            program.set_online([UNCONSENTED[1]], False, actor="test")
            await approve(h)
            final = await h.wait_for_state(Phase.RESUMED)

            c = final.conditions
            assert c is not None and c.profile == NARROW
            assert c.consent is not None and c.consent.unconsented_employees == 1
            assert (c.consent.agents_halted, c.consent.agents_pending) == (1, 1)
            assert sorted(c.consent.agent_ids) == UNCONSENTED and c.consent.document is not None
            assert [(r.kind, r.column) for r in c.data_actions] == [("null_column", "typed_content")]
            assert c.data_actions[0].rows_affected > 0
            assert c.check is not None and c.check.holds and c.check.agents_collecting == AGENTS - 2
            assert final.resumed is not None and final.resumed.collecting == AGENTS - 2
            assert any(e.action == "resume.conditions" for e in final.timeline)

            # The returning agent applies its queued halt, whatever the switch says.
            program.set_online([UNCONSENTED[1]], True, actor="test")
            assert all(program.state_of(program.agents[a]) == AgentState.HALTED for a in UNCONSENTED)
            # Over a period of ticks: rows keep coming, none with a dropped type or of the unconsented employee.
            written = program.counters.ticks_written
            await wait_for_ticks(h, 10)
            assert program.counters.ticks_written > written
            since = final.resumed.at
            seen = rows_since(h.database_dsn, since)
            assert seen["rows"] > 0
            assert (seen["typed_content"], seen["window_title"], seen["unconsented"]) == (0, 0, 0)
            assert seen["typed_content_ever"] == 0  # the data action nulled what was collected before
            handle = h.client.get_workflow_handle(final.pause_id)
            closed = PauseState.model_validate(await handle.result())
            assert closed.report is not None
            markdown = render_markdown(ReportInput.model_validate(h.connectors.evidence_store.read_json(
                closed.report.key)))
            assert "agents capture key_codes, mouse_buttons, mouse_positions" in markdown
            assert "4 employees consented; 1 did not, their agents left halted (1 confirmed, 1 when they return)" \
                in markdown
            assert "conditions hold" in markdown
            # The list of agents left halted is evidence the pause recorded, and the evidence holds against it.
            audit = audit_evidence(h.connectors.evidence_store.root, closed, record="the closed pause",  # type: ignore[attr-defined]
                                   pinned=[h.connectors.evidence_store.signing_key_sha256])  # type: ignore[attr-defined]
            assert audit.ok, [line.model_dump() for line in audit.problems]
            listed = h.connectors.evidence_store.read_json(c.consent.document.key,
                                                           expected_sha256=c.consent.document.sha256)
            assert sorted((d["agent_id"], d["employee"]) for d in listed) == [
                (a, "employee_0004") for a in UNCONSENTED]
            # History holds counts, digests and agent ids: no collected data, no DSN.
            history = readable_history(await handle.fetch_history())
            assert samples and not any(v in history for v in samples)
            assert h.database_dsn not in history
            await replay_and_maybe_record(handle, "resume-conditions")

    async def test_a_plan_with_a_data_type_the_fleet_does_not_know_is_refused_at_proposal(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=AGENTS) as h:
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
            await complete_review(h)
            bad = NARROWED_PLAN.model_copy(update={"collection": CollectionPlan(data_types=["key_codes",
                                                                                          "screenshots"])})
            with pytest.raises(ActionRefused, match="cannot capture screenshots; they capture key_codes"):
                await h.act(ProposePlanInput(actor=COMMANDER, plan=bad))
            status = await h.status()
            assert status.plan is None and status.phase == Phase.UNDER_REVIEW

            # A plan resuming consenting employees only needs a consent table the database has.
            with psycopg.connect(h.database_dsn, autocommit=True) as conn:
                conn.execute("ALTER TABLE telemetry.consent RENAME TO consent_old")
            with pytest.raises(ActionRefused, match=r'consent: .*relation "telemetry\.consent" does not exist'):
                await h.act(ProposePlanInput(actor=COMMANDER, plan=CONDITIONED_PLAN))
            assert (await h.status()).plan is None

    async def test_conditions_that_do_not_hold_before_resumed_refuse_the_resume(
        self, make_harness: HarnessFactory
    ) -> None:
        # Every fleet request takes 200 ms, so the misbehaving agent has written for several ticks
        # before the conditions are checked.
        slow = FaultSettings(latency_ms=200, jitter_ms=0, profile_ignored_by=["agent-00001"])
        async with make_harness(agents=AGENTS) as h:
            first = await to_awaiting_approval(h, CONDITIONED_PLAN)
            h.fleet.app.state.faults.update(slow)
            await approve(h)
            status = await h.wait_for(lambda s: any(e.action == "resume.refused" for e in s.timeline),
                                      what="resume refused", timeout=90)
            refusal = next(e for e in status.timeline if e.action == "resume.refused")
            assert "conditions do not hold" in refusal.detail and "typed_content" in refusal.detail

            # Contained again with the same plan awaiting approval; the switch is off.
            status = await h.wait_for_state(Phase.AWAITING_APPROVAL, timeout=90)
            assert status.approvals == [] and status.approval_digest == first.approval_digest
            assert not h.fleet_state.program(h.program).switch.enabled

            h.fleet.app.state.faults.update(FaultSettings(latency_ms=1, jitter_ms=1))
            # The first resume's stray rows are nulled again by the next resume's data action.
            await approve(h)
            final = await h.wait_for_state(Phase.RESUMED, timeout=90)
            assert final.conditions is not None and final.conditions.check is not None
            assert final.conditions.check.holds
