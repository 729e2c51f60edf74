"""The rules of break-glass grants, called directly: who may ask, approve, end and review, and what
each does to the pause's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pausegate.errors import ActionRefused
from pausegate.models.break_glass import (
    ApproveBreakGlassInput,
    EndBreakGlassInput,
    GrantClosed,
    RequestBreakGlassInput,
    TableAccess,
)
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.updates import CompleteItemInput
from pausegate.policy import break_glass as bg
from pausegate.policy import transitions as t
from tests.support.harness import ANALYST, COMMANDER, PRIVACY, SECURITY_LEAD, example_runbook

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RUNBOOK = example_runbook("telemetry-policy")


def paused(phase: Phase = Phase.UNDER_REVIEW) -> PauseState:
    state = t.new_pause("pause/x", PauseRequest(program=RUNBOOK.program.id, reason="leak", commander=COMMANDER,
                                                 runbook=RUNBOOK), NOW, "abcd1234")
    state.phase = phase
    return state


def ask(actor: Actor = ANALYST, **changes: object) -> RequestBreakGlassInput:
    fields: dict[str, object] = {"actor": actor, "dataset": "telemetry", "tables": [TableAccess(table="keystrokes")],
                                 "reason": "confirm the leaked rows", "duration": timedelta(minutes=30)}
    return RequestBreakGlassInput(**(fields | changes))


def refused(call: object, *args: object) -> str:
    with pytest.raises(ActionRefused) as exc:
        call(*args)  # type: ignore[operator]
    return exc.value.code


class TestRequests:
    def test_only_a_requester_role_asks_for_what_the_dataset_holds_within_the_maximum(self) -> None:
        state = paused()
        bg.check_request(RUNBOOK, state, ask())
        assert refused(bg.check_request, RUNBOOK, state, ask(actor=PRIVACY)) == "wrong_role"
        assert refused(bg.check_request, RUNBOOK, state, ask(duration=timedelta(hours=2))) == "too_long"
        assert refused(bg.check_request, RUNBOOK, state, ask(dataset="payroll")) == "unknown_dataset"
        assert refused(bg.check_request, RUNBOOK, state,
                       ask(tables=[TableAccess(table="consent")])) == "not_in_dataset"
        assert refused(bg.check_request, RUNBOOK, state, ask(copies=["c1"])) == "unknown_copy"

    def test_not_before_containment_nor_after_the_resume(self) -> None:
        for phase in (Phase.CONTAINING, Phase.RESUMED, Phase.DECOMMISSIONED):
            assert refused(bg.check_request, RUNBOOK, paused(phase), ask()) == "wrong_state"

    def test_a_runbook_without_terms_allows_none_and_one_without_emergencies_refuses_a_self_grant(self) -> None:
        plain = RUNBOOK.model_copy(update={"break_glass": None})
        assert refused(bg.check_request, plain, paused(), ask()) == "no_break_glass"
        strict = RUNBOOK.model_copy(update={"break_glass": RUNBOOK.break_glass.model_copy(  # type: ignore[union-attr]
            update={"emergency_self_grant": False})})
        assert refused(bg.check_request, strict, paused(), ask(emergency=True)) == "no_emergency"

    def test_a_runbook_whose_dataset_log_is_not_an_audit_source_refuses_the_grant(self) -> None:
        unlogged = RUNBOOK.model_copy(update={"audit_sources": [a for a in RUNBOOK.audit_sources
                                                                if a.kind != "postgres_log"]})
        assert refused(bg.check_request, unlogged, paused(), ask()) == "no_statement_log"

    def test_a_verifier_that_is_not_scram_is_refused_by_the_model(self) -> None:
        with pytest.raises(ValueError, match="SCRAM-SHA-256"):
            ask(scram_verifier="md5" + "0" * 32)


class TestGrantLifecycle:
    def test_approval_starts_it_and_adds_a_review_that_holds_the_sign_off(self) -> None:
        state = paused(Phase.AWAITING_APPROVAL)
        grant = bg.request_grant(state, RUNBOOK, ask(), NOW)
        assert grant.status == "requested" and grant.role.startswith(bg.ROLE_PREFIX)
        assert refused(bg.check_approval, RUNBOOK, state, ApproveBreakGlassInput(actor=ANALYST, grant_id="g1")) \
            == "wrong_role"
        holder_approver = ANALYST.model_copy(update={"roles": ["security-analyst", "incident-commander"]})
        assert refused(bg.check_approval, RUNBOOK, state,
                       ApproveBreakGlassInput(actor=holder_approver, grant_id="g1")) == "separation_of_duties"
        bg.check_approval(RUNBOOK, state, ApproveBreakGlassInput(actor=COMMANDER, grant_id="g1"))
        bg.approve_grant(state, RUNBOOK, ApproveBreakGlassInput(actor=COMMANDER, grant_id="g1"), NOW)
        assert grant.status == "opening" and grant.ends_at == NOW + timedelta(minutes=30)
        assert [i.id for i in state.checklist][-1] == grant.review_item
        assert not t.ready_for_approval(state)

    def test_two_grants_of_one_person_are_two_roles_counted_apart(self) -> None:
        state = paused()
        first = bg.request_grant(state, RUNBOOK, ask(emergency=True), NOW)
        second = bg.request_grant(state, RUNBOOK, ask(emergency=True), NOW)
        assert first.role != second.role
        assert state.break_glass is not None and state.break_glass.open_per_holder() == {ANALYST.id: 2}
        bg.grant_closed(state, GrantClosed(grant_id=first.id, opened=True, verified=True), NOW)
        assert state.break_glass.open_per_holder() == {ANALYST.id: 1}
        assert not bg.grant_closed(state, GrantClosed(grant_id=first.id, opened=True), NOW)  # once

    def test_the_holder_or_the_commander_ends_it_nobody_else(self) -> None:
        state = paused()
        bg.request_grant(state, RUNBOOK, ask(emergency=True), NOW)
        bg.check_end(RUNBOOK, state, EndBreakGlassInput(actor=ANALYST, grant_id="g1"))
        bg.check_end(RUNBOOK, state, EndBreakGlassInput(actor=COMMANDER, grant_id="g1"))
        assert refused(bg.check_end, RUNBOOK, state, EndBreakGlassInput(actor=PRIVACY, grant_id="g1")) == "wrong_role"
        assert refused(bg.check_end, RUNBOOK, state, EndBreakGlassInput(actor=ANALYST, grant_id="g9")) \
            == "unknown_grant"

    def test_its_review_waits_for_its_end_and_is_neither_the_holders_nor_the_approvers(self) -> None:
        state = paused()
        bg.request_grant(state, RUNBOOK, ask(), NOW)
        bg.approve_grant(state, RUNBOOK, ApproveBreakGlassInput(actor=SECURITY_LEAD, grant_id="g1"), NOW)
        item = "break-glass-review-g1"
        assert refused(bg.check_review, state, CompleteItemInput(actor=PRIVACY, item_id=item)) == "grant_open"
        bg.grant_closed(state, GrantClosed(grant_id="g1", opened=True, verified=True), NOW)
        assert refused(bg.check_review, state, CompleteItemInput(actor=SECURITY_LEAD, item_id=item)) \
            == "separation_of_duties"
        bg.check_review(state, CompleteItemInput(actor=PRIVACY, item_id=item))

    def test_a_grant_that_never_opened_settles_its_own_review(self) -> None:
        state = paused()
        bg.request_grant(state, RUNBOOK, ask(emergency=True), NOW)
        bg.grant_closed(state, GrantClosed(grant_id="g1", opened=False, reason="no statement log"), NOW)
        item = next(i for i in state.checklist if i.id == "break-glass-review-g1")
        assert item.done and state.timeline[-1].action == "break_glass.refused"
