"""The bookkeeping of a pause as pure functions: each step's change to a PauseState, given the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pausegate.models.access import DatasetCheck, DatasetContainment, GrantSpec
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.digests import approval_digest, checklist_digest, plan_digest
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.people import SYSTEM_ACTOR, Actor, PauseRequest, Severity
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.state import AppliedUpdate, ExposureSummary, PauseState
from pausegate.models.steps import AgentsCheck, ContainmentCheck, HaltAgentsResult
from pausegate.models.updates import (
    ApproveInput,
    CompleteItemInput,
    DecommissionInput,
    ProposePlanInput,
    RejectPlanInput,
    UpdateReceipt,
    WaiveAgentsInput,
    WaiveResidualInput,
)
from pausegate.policy import transitions as t
from pausegate.runbook.loader import load_runbook

RUNBOOK = load_runbook(Path(__file__).resolve().parents[2] / "runbooks" / "employee-telemetry.yaml")
NOW = datetime(2026, 11, 29, 9, 30, 5, tzinfo=UTC)
COMMANDER = Actor(id="carol", roles=["incident-commander"])
LEAD = Actor(id="lee", roles=["security-lead", "security-analyst", "data-engineer", "privacy-officer",
                             "legal-counsel"])
CTO = Actor(id="dan", roles=["cto"])
CPO = Actor(id="eve", roles=["cpo"])
CISO = Actor(id="fay", roles=["ciso"])
REQUEST = PauseRequest(program="employee-telemetry", reason="keystrokes readable by every employee",
                       severity=Severity.CRITICAL, commander=COMMANDER, runbook=RUNBOOK)
PLAN = ResumePlan(grants=[GrantSpec(dataset="telemetry", role="telemetry_analysts", table="keystrokes",
                                    privileges=["select"])])
# The same runbook wanting all three approver roles.
STRICTER = RUNBOOK.model_copy(update={"resume_policy": RUNBOOK.resume_policy.model_copy(update={"quorum": 3})})
OTHER_PLAN = ResumePlan(agents=AgentSelection(mode="none"), grants=PLAN.grants)


def fresh(suffix: str = "a1b2") -> PauseState:
    return t.new_pause("pause-1", REQUEST, NOW, suffix)


def actions(state: PauseState) -> list[str]:
    return [e.action for e in state.timeline]


def entries(state: PauseState, action: str) -> list[str]:
    return [e.detail for e in state.timeline if e.action == action]


def halt(ids: list[str], total: int = 10, *, switch_off: bool = True) -> HaltAgentsResult:
    count = len(ids)
    return HaltAgentsResult(switch_off=switch_off, total=total, halted=total - count, unconfirmed=count,
                            unconfirmed_ids=ids)


def revoked(dataset: str = "telemetry", *, revoked: int = 3, residual: list[str] | None = None,
            digit: str = "a") -> DatasetContainment:
    residual = residual or []
    return DatasetContainment(dataset=dataset, scope=EvidenceRef(uri=f"evidence://scope/{dataset}", sha256=digit * 64),
                              grants_recorded=4, roles_with_access=7, revoked=revoked, verified=True,
                              residual=residual, residual_count=len(residual))


def snapshot(source: str) -> SnapshotResult:
    return SnapshotResult(source=source, window_start=NOW - timedelta(days=90), window_end=NOW,
                          bundle=EvidenceRef(uri=f"evidence://bundle/{source}", sha256="b" * 64, records=12),
                          chunks=2)


def waive(ids: list[str], *, everything: bool = False) -> WaiveAgentsInput:
    return WaiveAgentsInput(actor=COMMANDER, agent_ids=ids, all_unconfirmed=everything, reason="laptops destroyed")


def completion(item_id: str, uri: str = "evidence://review/doc") -> CompleteItemInput:
    item = next(i for i in RUNBOOK.checklist if i.id == item_id)
    return CompleteItemInput(actor=LEAD, item_id=item_id,
                             evidence=[EvidenceAttachment(name=name, uri=uri) for name in item.evidence])


def contain(state: PauseState, at: datetime = NOW + timedelta(seconds=90)) -> PauseState:
    """Containment run to its end: agents halted, the dataset revoked, both audit sources sealed."""
    t.start_containment(state, RUNBOOK, NOW)
    t.apply_halt(state, halt([]), NOW)
    t.dataset_contained(state, revoked(), NOW)
    for source in RUNBOOK.audit_sources:
        t.evidence_sealed(state, snapshot(source.name), 0, NOW)
        t.source_sealed(state, source.name)
    t.contained(state, at)
    return state


def reviewed(state: PauseState) -> PauseState:
    """Every checklist item complete (in dependency order, as the runbook lists them)."""
    for item in RUNBOOK.checklist:
        t.complete_item(state, completion(item.id), NOW)
    return state


def awaiting_approval() -> PauseState:
    state = reviewed(contain(fresh()))
    state.phase = Phase.UNDER_REVIEW
    t.propose_plan(state, ProposePlanInput(actor=LEAD, plan=PLAN), NOW)
    state.phase = Phase.AWAITING_APPROVAL
    return state


def approve(state: PauseState, actor: Actor, role: str, digest: str | None = None) -> str:
    return t.approve_plan(state, ApproveInput(actor=actor, role=role, digest=digest or state.approval_digest or ""),
                          NOW)


class TestNewPause:
    def test_incident_id_and_evidence_key_carry_the_program_the_start_time_and_the_suffix(self) -> None:
        state = fresh("a1b2")
        assert state.incident_id == "employee-telemetry-20261129T093005Z-a1b2"
        assert state.evidence_key == "employee-telemetry/20261129T093005Z-a1b2"

    def test_two_pauses_started_in_the_same_second_differ_by_their_suffix(self) -> None:
        one, other = fresh("a1b2"), fresh("c3d4")
        assert one.incident_id != other.incident_id
        assert one.evidence_key != other.evidence_key

    def test_each_checklist_item_is_due_its_runbook_duration_after_the_start(self) -> None:
        state = fresh()
        assert [i.id for i in state.checklist] == [i.id for i in RUNBOOK.checklist]
        assert {i.id: i.due_at for i in state.checklist} == {
            "access-review": NOW + timedelta(days=2),
            "root-cause": NOW + timedelta(days=5),
            "narrowed-access": NOW + timedelta(days=7),
            "data-minimisation": NOW + timedelta(days=7),
            "employee-notice": NOW + timedelta(days=10),
            "legal-privacy-review": NOW + timedelta(days=14),
        }
        root_cause = state.checklist[1]
        assert root_cause.depends_on == ["access-review"]
        assert root_cause.evidence_required == ["root-cause-analysis"]
        assert not any(i.done or i.reminded for i in state.checklist)

    def test_a_new_pause_is_active_with_the_runbooks_quorum_and_nothing_done_yet(self) -> None:
        state = fresh()
        assert state.phase == Phase.ACTIVE
        assert state.quorum == RUNBOOK.resume_policy.quorum == 2
        assert (state.pause_id, state.program, state.commander) == ("pause-1", "employee-telemetry", "carol")
        assert state.severity == Severity.CRITICAL
        assert state.started_at == NOW
        assert state.timeline == []
        assert state.containment.started_at is None
        assert state.plan is None and state.approval_digest is None

    def test_the_quorum_is_copied_from_the_runbook(self) -> None:
        state = t.new_pause("pause-1", REQUEST.model_copy(update={"runbook": STRICTER}), NOW, "a1b2")
        assert state.quorum == 3

    def test_entering_a_phase_records_it_and_returns_the_phase_left(self) -> None:
        state = fresh()
        assert t.enter(state, Phase.CONTAINING, NOW, "carol", "kill switch pulled") == Phase.ACTIVE
        assert state.phase == Phase.CONTAINING
        assert [(e.actor, e.action, e.detail) for e in state.timeline] == [
            ("carol", "state.containing", "kill switch pulled")]


class TestStartingContainment:
    def test_the_runbooks_datasets_and_audit_sources_become_pending(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        assert state.containment.started_at == NOW
        assert state.containment.datasets_pending == ["telemetry"]
        assert state.containment.evidence_pending == ["db-reads", "fleet-audit"]

    def test_starting_again_keeps_the_first_start_and_the_progress_made(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        t.dataset_contained(state, revoked(), NOW)
        t.source_sealed(state, "db-reads")
        t.start_containment(state, RUNBOOK, NOW + timedelta(hours=1))
        assert state.containment.started_at == NOW
        assert state.containment.datasets_pending == []
        assert state.containment.evidence_pending == ["fleet-audit"]


class TestHalting:
    def test_a_first_result_with_unconfirmed_agents_records_one_unconfirmed_entry(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1", "a2"]), NOW)
        agents = state.containment.agents
        assert (agents.total, agents.halted, agents.unconfirmed) == (10, 8, 2)
        assert agents.unconfirmed_ids == ["a1", "a2"]
        assert not agents.confirmed
        assert actions(state) == ["containment.agents.unconfirmed"]
        assert entries(state, "containment.agents.unconfirmed") == ["8 of 10 halted; 2 unconfirmed: a1, a2"]

    def test_the_same_result_again_records_nothing_new(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1", "a2"]), NOW)
        t.apply_halt(state, halt(["a1", "a2"]), NOW + timedelta(minutes=1))
        assert actions(state) == ["containment.agents.unconfirmed"]

    def test_a_different_number_of_unconfirmed_agents_is_recorded_again(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1", "a2"]), NOW)
        t.apply_halt(state, halt(["a2"]), NOW + timedelta(minutes=1))
        assert entries(state, "containment.agents.unconfirmed")[-1] == "9 of 10 halted; 1 unconfirmed: a2"
        assert len(entries(state, "containment.agents.unconfirmed")) == 2
        assert state.containment.agents.unconfirmed_ids == ["a2"]

    def test_an_agent_left_unconfirmed_is_listed_and_a_later_full_halt_confirms(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1"]), NOW)
        t.apply_halt(state, halt([]), NOW + timedelta(minutes=1))
        agents = state.containment.agents
        assert agents.confirmed
        assert (agents.halted, agents.unconfirmed, agents.unconfirmed_ids) == (10, 0, [])
        assert actions(state) == ["containment.agents.unconfirmed", "containment.agents.halted"]
        assert entries(state, "containment.agents.halted") == ["10 of 10 agents halted and confirmed; 0 waived"]

    def test_every_agent_halted_is_not_confirmed_while_the_program_switch_is_on(self) -> None:
        state = fresh()
        t.apply_halt(state, halt([], switch_off=False), NOW)
        assert not state.containment.agents.confirmed
        assert "containment.agents.halted" not in actions(state)

    def test_listed_ids_are_capped_and_the_count_carries_the_rest(self) -> None:
        ids = [f"agent-{n:04d}" for n in range(MAX_LISTED_IDS + 50)]
        state = fresh()
        t.apply_halt(state, halt(ids, total=1000), NOW)
        agents = state.containment.agents
        assert agents.unconfirmed == MAX_LISTED_IDS + 50
        assert agents.unconfirmed_ids == ids[:MAX_LISTED_IDS]
        detail = entries(state, "containment.agents.unconfirmed")[0]
        assert detail.endswith(", ".join(ids[:10]))
        assert ids[10] not in detail

    def test_a_failed_halt_is_recorded_as_refused_and_the_next_result_clears_the_error(self) -> None:
        state = fresh()
        t.halt_failed(state, "fleet unreachable", NOW)
        assert state.containment.agents.last_error == "fleet unreachable"
        failure = state.timeline[-1]
        assert (failure.action, failure.detail, failure.accepted) == ("containment.agents.failed",
                                                                     "fleet unreachable", False)
        t.apply_halt(state, halt([]), NOW)
        assert state.containment.agents.last_error is None


class TestWaivers:
    def test_agents_are_not_all_waived_until_every_listed_unconfirmed_id_is(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1", "a2", "a3"]), NOW)
        t.waive_agents(state, waive(["a1", "a2"]), NOW)
        assert not t.waived_all(state)
        t.waive_agents(state, waive(["a3"]), NOW)
        assert t.waived_all(state)

    def test_waived_ids_are_the_sorted_union_of_every_waiver(self) -> None:
        state = fresh()
        t.waive_agents(state, waive(["a3", "a1"]), NOW)
        t.waive_agents(state, waive(["a1", "a2"]), NOW)
        assert t.waived_ids(state) == ["a1", "a2", "a3"]
        assert entries(state, "containment.agents.waiver") == ["a3, a1: laptops destroyed",
                                                               "a1, a2: laptops destroyed"]

    def test_waiving_every_listed_id_does_not_cover_agents_beyond_the_list(self) -> None:
        ids = [f"agent-{n:04d}" for n in range(MAX_LISTED_IDS + 50)]
        state = fresh()
        t.apply_halt(state, halt(ids, total=1000), NOW)
        t.waive_agents(state, waive(ids[:MAX_LISTED_IDS]), NOW)
        assert not t.waived_all(state)

    def test_an_all_unconfirmed_waiver_covers_agents_beyond_the_listed_ids(self) -> None:
        ids = [f"agent-{n:04d}" for n in range(MAX_LISTED_IDS + 50)]
        state = fresh()
        t.apply_halt(state, halt(ids, total=1000), NOW)
        t.waive_agents(state, waive([], everything=True), NOW)
        assert t.waived_all(state)
        t.settle_waivers(state, NOW)
        assert state.containment.agents.confirmed
        assert state.containment.agents.waived == MAX_LISTED_IDS + 50
        assert entries(state, "containment.agents.waiver") == ["all unconfirmed agents: laptops destroyed"]

    def test_settling_confirms_the_agents_counts_them_waived_and_records_it_once(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1", "a2"]), NOW)
        t.waive_agents(state, waive(["a1", "a2"]), NOW)
        t.settle_waivers(state, NOW)
        t.settle_waivers(state, NOW)
        agents = state.containment.agents
        assert agents.confirmed
        assert agents.waived == 2
        assert entries(state, "containment.agents.waived") == ["2 unconfirmed agents waived by the commander"]

    def test_settling_without_covering_waivers_changes_nothing(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1", "a2"]), NOW)
        t.waive_agents(state, waive(["a1"]), NOW)
        t.settle_waivers(state, NOW)
        assert not state.containment.agents.confirmed
        assert state.containment.agents.waived == 0
        assert "containment.agents.waived" not in actions(state)

    def test_waivers_count_only_once_the_program_switch_is_off(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1"], switch_off=False), NOW)
        t.waive_agents(state, waive([], everything=True), NOW)
        assert not t.waived_all(state)

    def test_a_halt_result_naming_only_waived_agents_settles_them(self) -> None:
        state = fresh()
        t.waive_agents(state, waive(["a1"]), NOW)
        t.apply_halt(state, halt(["a1"]), NOW)
        assert state.containment.agents.confirmed
        assert state.containment.agents.waived == 1
        assert actions(state)[-2:] == ["containment.agents.unconfirmed", "containment.agents.waived"]

    def test_a_full_halt_after_waivers_reports_the_waived_count(self) -> None:
        state = fresh()
        t.apply_halt(state, halt(["a1"]), NOW)
        t.waive_agents(state, waive(["a1"]), NOW)
        t.settle_waivers(state, NOW)
        t.apply_halt(state, halt([], total=9), NOW)
        assert entries(state, "containment.agents.halted") == ["9 of 9 agents halted and confirmed; 1 waived"]


class TestDatasets:
    def test_a_contained_dataset_leaves_the_pending_list(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        t.dataset_contained(state, revoked(), NOW)
        assert state.containment.datasets_pending == []
        assert state.containment.datasets == [revoked()]
        assert entries(state, "containment.dataset.revoked") == [
            "telemetry: 7 roles had access by 4 grants; 3 revoked and verified; scope aaaaaaaaaaaa"]

    def test_a_later_result_replaces_the_earlier_one_of_the_same_dataset_only(self) -> None:
        state = fresh()
        t.dataset_contained(state, revoked("archive"), NOW)
        t.dataset_contained(state, revoked(revoked=3), NOW)
        t.dataset_contained(state, revoked(revoked=5, digit="c"), NOW)
        assert state.containment.datasets == [revoked("archive"), revoked(revoked=5, digit="c")]

    def test_residual_access_is_recorded_as_refused_and_blocks_settling(self) -> None:
        state = fresh()
        t.dataset_contained(state, revoked(residual=["postgres:telemetry.keystrokes:superuser"]), NOW)
        residual = [e for e in state.timeline if e.action == "containment.dataset.residual"]
        assert [(e.detail, e.accepted) for e in residual] == [
            ("telemetry: 1 paths no REVOKE can close: postgres:telemetry.keystrokes:superuser", False)]
        assert not t.residual_settled(state)

    def test_a_dataset_without_residual_access_records_none_and_is_settled(self) -> None:
        state = fresh()
        t.dataset_contained(state, revoked(), NOW)
        assert "containment.dataset.residual" not in actions(state)
        assert t.residual_settled(state)

    def test_waived_residual_access_is_settled_and_not_recorded_again(self) -> None:
        state = fresh()
        result = revoked(residual=["postgres:telemetry.keystrokes:superuser"])
        t.dataset_contained(state, result, NOW)
        t.waive_residual(state, WaiveResidualInput(actor=COMMANDER, dataset="telemetry", reason="the DBA"), NOW)
        assert t.residual_settled(state)
        assert state.containment.residual_waived == ["telemetry"]
        t.dataset_contained(state, result, NOW)
        assert len(entries(state, "containment.dataset.residual")) == 1

    def test_a_waiver_for_one_dataset_does_not_settle_another(self) -> None:
        state = fresh()
        t.dataset_contained(state, revoked("archive", residual=["owner_role:archive.t:owner"]), NOW)
        t.waive_residual(state, WaiveResidualInput(actor=COMMANDER, dataset="telemetry", reason="x"), NOW)
        assert not t.residual_settled(state)

    def test_a_failed_step_is_recorded_and_only_the_last_twenty_errors_are_kept(self) -> None:
        state = fresh()
        for n in range(25):
            t.step_failed(state, "containment.dataset.telemetry", f"attempt {n}", NOW)
        assert len(state.containment.errors) == 20
        assert state.containment.errors[0] == "containment.dataset.telemetry: attempt 5"
        assert state.containment.errors[-1] == "containment.dataset.telemetry: attempt 24"
        last = state.timeline[-1]
        assert (last.action, last.accepted) == ("containment.dataset.telemetry.failed", False)


class TestEvidenceAndSummary:
    def test_a_sealed_segment_is_kept_and_its_source_leaves_the_pending_list(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        t.evidence_sealed(state, snapshot("db-reads"), 1, NOW)
        t.source_sealed(state, "db-reads")
        assert state.containment.evidence == [snapshot("db-reads")]
        assert state.containment.evidence_pending == ["fleet-audit"]
        assert entries(state, "containment.evidence.sealed") == [
            "db-reads segment 1: 12 records in 2 chunks, manifest bbbbbbbbbbbb"]

    def test_the_exposure_report_is_kept_with_its_counts_on_the_timeline(self) -> None:
        state = fresh()
        summary = ExposureSummary(readers=40, objects=2, statements=900, failed_reads=3,
                                  report=EvidenceRef(uri="evidence://exposure", sha256="d" * 64))
        t.exposure_reported(state, summary, NOW)
        assert state.containment.exposure == summary
        assert entries(state, "containment.exposure") == [
            "40 roles read the dataset in the exposure window (900 statements, 3 refused); report dddddddddddd"]

    def test_the_summary_gives_the_time_taken_and_every_count(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        t.apply_halt(state, halt(["a1"]), NOW)
        t.waive_agents(state, waive(["a1"]), NOW)
        t.settle_waivers(state, NOW)
        t.dataset_contained(state, revoked(), NOW)
        t.evidence_sealed(state, snapshot("db-reads"), 0, NOW)
        t.evidence_sealed(state, snapshot("fleet-audit"), 0, NOW)
        t.evidence_sealed(state, snapshot("db-reads"), 1, NOW)
        t.contained(state, NOW + timedelta(seconds=90))
        assert t.containment_summary(state) == (
            "contained in 90.0s: 9/10 agents halted (1 waived), 1 datasets revoked, 3 evidence bundles sealed")

    def test_the_summary_of_an_unfinished_containment_counts_no_time(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        assert t.containment_summary(state).startswith("contained in 0.0s: 0/0 agents halted (0 waived), 0 datasets")


class TestReviewPhase:
    def test_review_moves_to_approval_once_contained_complete_and_planned(self) -> None:
        state = reviewed(contain(fresh()))
        state.phase = Phase.UNDER_REVIEW
        assert t.review_phase(state) is None
        t.propose_plan(state, ProposePlanInput(actor=LEAD, plan=PLAN), NOW)
        assert t.ready_for_approval(state)
        assert t.review_phase(state) == Phase.AWAITING_APPROVAL

    def test_an_open_checklist_item_keeps_review_where_it_is(self) -> None:
        state = contain(fresh())
        for item in RUNBOOK.checklist[:-1]:
            t.complete_item(state, completion(item.id), NOW)
        t.propose_plan(state, ProposePlanInput(actor=LEAD, plan=PLAN), NOW)
        state.phase = Phase.UNDER_REVIEW
        assert not t.ready_for_approval(state)
        assert t.review_phase(state) is None

    def test_without_containment_confirmed_nothing_is_ready(self) -> None:
        state = reviewed(fresh())
        t.propose_plan(state, ProposePlanInput(actor=LEAD, plan=PLAN), NOW)
        state.phase = Phase.UNDER_REVIEW
        assert not t.ready_for_approval(state)
        assert t.review_phase(state) is None

    def test_while_containing_review_does_not_move_even_when_ready(self) -> None:
        state = awaiting_approval()
        state.phase = Phase.CONTAINING
        assert t.ready_for_approval(state)
        assert t.review_phase(state) is None

    def test_an_amended_item_stays_done_and_approval_stays_the_phase(self) -> None:
        state = awaiting_approval()
        t.complete_item(state, completion("access-review", "evidence://review/v2"), NOW)
        assert state.checklist[0].done
        assert t.review_phase(state) is None

    def test_rejecting_the_plan_sends_review_back(self) -> None:
        state = awaiting_approval()
        t.reject_plan(state, RejectPlanInput(actor=CTO, reason="too wide"), NOW)
        assert t.review_phase(state) == Phase.UNDER_REVIEW


class TestPlansAndApprovals:
    def test_there_is_no_approval_digest_without_a_plan(self) -> None:
        state = reviewed(contain(fresh()))
        assert state.approval_digest is None

    def test_the_approval_digest_binds_the_plan_and_the_checklist(self) -> None:
        state = awaiting_approval()
        assert state.plan is not None and state.plan.plan_digest == plan_digest(PLAN)
        assert state.plan.proposed_by == "lee"
        assert state.approval_digest == approval_digest(plan_digest(PLAN), checklist_digest(state.checklist))

    def test_an_approval_is_counted_against_the_quorum(self) -> None:
        state = awaiting_approval()
        assert approve(state, CTO, "cto") == "approval 1 of 2 recorded"
        assert [(a.actor_id, a.role, a.digest) for a in state.approvals] == [("dan", "cto", state.approval_digest)]
        assert entries(state, "plan.approved") == [f"as cto, digest {state.approval_digest[:12]} (1 of 2)"]

    def test_amending_an_items_evidence_changes_the_digest_and_voids_approvals(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        before = state.approval_digest
        message = t.complete_item(state, completion("root-cause", "evidence://review/v2"), NOW)
        assert message == "item root-cause complete"
        assert state.approval_digest != before
        assert state.approvals == []
        assert entries(state, "approvals.voided") == ["1 approvals voided: checklist item root-cause changed"]
        assert actions(state)[-2] == "checklist.amended"

    def test_completing_an_item_records_who_when_and_what(self) -> None:
        state = fresh()
        later = NOW + timedelta(hours=3)
        t.complete_item(state, completion("access-review"), later)
        item = state.checklist[0]
        assert (item.completed_by, item.completed_at) == ("lee", later)
        assert [e.name for e in item.evidence] == ["access-report"]
        assert entries(state, "checklist.completed") == [
            "access-review with evidence access-report=evidence://review/doc"]
        assert "approvals.voided" not in actions(state)

    def test_a_new_plan_changes_the_digest_and_voids_approvals(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        approve(state, CPO, "cpo")
        before = state.approval_digest
        t.propose_plan(state, ProposePlanInput(actor=LEAD, plan=OTHER_PLAN), NOW)
        assert state.approval_digest not in (None, before)
        assert state.approvals == []
        assert entries(state, "approvals.voided") == ["2 approvals voided: a new plan was proposed"]

    def test_rejecting_the_plan_removes_it_its_digest_and_its_approvals(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        assert t.reject_plan(state, RejectPlanInput(actor=CPO, reason="too wide"), NOW) == "plan rejected"
        assert state.plan is None
        assert state.approval_digest is None
        assert state.approvals == []
        assert entries(state, "plan.rejected") == ["too wide"]

    def test_voiding_no_approvals_records_nothing(self) -> None:
        state = fresh()
        t.void_approvals(state, NOW, "nothing to void")
        assert state.timeline == []


class TestQuorum:
    def test_two_approvers_in_two_roles_on_the_current_digest_meet_the_quorum(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        assert not t.quorum_on_plan(state, RUNBOOK)
        approve(state, CPO, "cpo")
        assert t.quorum_on_plan(state, RUNBOOK)

    def test_approvals_of_a_stale_digest_do_not_count(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        approve(state, CPO, "cpo", digest="f" * 64)
        assert not t.quorum_on_plan(state, RUNBOOK)

    def test_two_approvals_in_one_role_do_not_meet_the_quorum(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        approve(state, Actor(id="gus", roles=["cto"]), "cto")
        assert not t.quorum_on_plan(state, RUNBOOK)

    def test_a_quorum_counts_only_while_awaiting_approval(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        approve(state, CPO, "cpo")
        state.phase = Phase.UNDER_REVIEW
        assert not t.quorum_on_plan(state, RUNBOOK)

    def test_the_quorum_is_the_runbooks(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        approve(state, CPO, "cpo")
        assert not t.quorum_on_plan(state, STRICTER)
        approve(state, CISO, "ciso")
        assert t.quorum_on_plan(state, STRICTER)

    def test_decommissioning_needs_the_quorum_of_votes_once_contained(self) -> None:
        state = contain(fresh())
        state.phase = Phase.UNDER_REVIEW
        assert t.vote_decommission(state, DecommissionInput(actor=CTO, role="cto", reason="stop"), NOW) \
            == "decommission vote recorded"
        assert not t.quorum_to_decommission(state, RUNBOOK)
        t.vote_decommission(state, DecommissionInput(actor=CPO, role="cpo", reason="stop"), NOW)
        assert t.quorum_to_decommission(state, RUNBOOK)
        assert entries(state, "decommission.voted")[-1] == "as cpo (2 of 2): stop"

    def test_decommission_votes_do_not_count_before_containment_or_after_review(self) -> None:
        state = fresh()
        state.phase = Phase.CONTAINING
        for actor, role in ((CTO, "cto"), (CPO, "cpo")):
            t.vote_decommission(state, DecommissionInput(actor=actor, role=role, reason="stop"), NOW)
        assert not t.quorum_to_decommission(state, RUNBOOK)
        t.contained(state, NOW)
        assert t.quorum_to_decommission(state, RUNBOOK)
        state.phase = Phase.RESUMING
        assert not t.quorum_to_decommission(state, RUNBOOK)


class TestDueDates:
    def test_the_next_due_time_is_the_earliest_open_item(self) -> None:
        assert t.next_due(fresh()) == NOW + timedelta(days=2)

    def test_an_item_becomes_overdue_once_marked_reminded_and_on_the_timeline(self) -> None:
        state = fresh()
        assert t.overdue(state, NOW + timedelta(days=2) - timedelta(seconds=1)) == []
        due = NOW + timedelta(days=2)
        assert [i.id for i in t.overdue(state, due)] == ["access-review"]
        assert state.checklist[0].reminded
        assert t.overdue(state, due + timedelta(hours=1)) == []
        assert entries(state, "checklist.overdue") == [f"access-review was due {due.isoformat()}"]

    def test_the_next_due_time_skips_reminded_items(self) -> None:
        state = fresh()
        t.overdue(state, NOW + timedelta(days=2))
        assert t.next_due(state) == NOW + timedelta(days=5)

    def test_the_next_due_time_skips_completed_items_and_they_are_never_overdue(self) -> None:
        state = fresh()
        for item_id in ("access-review", "root-cause", "narrowed-access", "data-minimisation"):
            t.complete_item(state, completion(item_id), NOW)
        assert t.next_due(state) == NOW + timedelta(days=10)
        assert [i.id for i in t.overdue(state, NOW + timedelta(days=10))] == ["employee-notice"]

    def test_nothing_is_due_once_every_item_is_done(self) -> None:
        assert t.next_due(reviewed(fresh())) is None


def drifted() -> ContainmentCheck:
    return ContainmentCheck(
        agents=AgentsCheck(switch_off=False, collecting=7, collecting_ids=[f"a{n}" for n in range(7)]),
        datasets=[DatasetCheck(dataset="telemetry", contained=False, violations=["all_employees:keystrokes:direct"],
                               violation_count=1),
                  DatasetCheck(dataset="archive", contained=True)],
    )


class TestResume:
    def test_containment_that_holds_has_no_problems(self) -> None:
        check = ContainmentCheck(agents=AgentsCheck(switch_off=True, collecting=0, collecting_ids=[]),
                                 datasets=[DatasetCheck(dataset="telemetry", contained=True)])
        assert t.resume_problems(check) == []

    def test_each_way_containment_drifted_is_one_problem(self) -> None:
        assert t.resume_problems(drifted()) == [
            "the program switch is on",
            "7 agents collecting: a0, a1, a2, a3, a4",
            "dataset telemetry reopened: all_employees:keystrokes:direct",
        ]

    def test_a_refused_resume_voids_approvals_and_starts_containment_again(self) -> None:
        state = awaiting_approval()
        approve(state, CTO, "cto")
        approve(state, CPO, "cpo")
        t.refuse_resume(state, RUNBOOK, drifted(), NOW + timedelta(days=1))
        assert state.approvals == []
        assert not state.containment.agents.confirmed
        assert state.containment.datasets_pending == ["telemetry"]
        assert state.containment.contained_at is None
        assert not t.ready_for_approval(state)
        refused = next(e for e in state.timeline if e.action == "resume.refused")
        assert refused.accepted is False
        assert refused.actor == SYSTEM_ACTOR
        assert refused.detail == ("containment no longer holds: the program switch is on; "
                                  "7 agents collecting: a0, a1, a2, a3, a4; "
                                  "dataset telemetry reopened: all_employees:keystrokes:direct")
        assert entries(state, "approvals.voided") == ["2 approvals voided: containment no longer held at resume"]

    def test_after_a_refused_resume_earlier_waivers_cannot_confirm_agents_the_fleet_has_not(self) -> None:
        state = fresh()
        t.start_containment(state, RUNBOOK, NOW)
        t.apply_halt(state, halt(["a1"]), NOW)
        t.waive_agents(state, waive(["a1"]), NOW)
        t.settle_waivers(state, NOW)
        assert state.containment.agents.confirmed
        t.refuse_resume(state, RUNBOOK, drifted(), NOW)
        t.halt_failed(state, "TargetUnavailableError: fleet unreachable", NOW)
        assert not t.waived_all(state)
        t.settle_waivers(state, NOW)
        assert not state.containment.agents.confirmed


class TestSerialisation:
    def rich(self) -> PauseState:
        state = awaiting_approval()
        t.apply_halt(state, halt(["a1"]), NOW)
        t.waive_agents(state, waive(["a1"]), NOW)
        t.exposure_reported(state, ExposureSummary(readers=1, objects=2, statements=3, failed_reads=0,
                                                   report=EvidenceRef(uri="evidence://x", sha256="e" * 64)), NOW)
        approve(state, CTO, "cto")
        t.vote_decommission(state, DecommissionInput(actor=CPO, role="cpo", reason="stop"), NOW)
        state.applied_updates = [AppliedUpdate(id="u-1", receipt=UpdateReceipt(phase=Phase.AWAITING_APPROVAL,
                                                                               message="approval 1 of 2 recorded"))]
        return state

    def test_state_survives_a_json_round_trip_unchanged(self) -> None:
        state = self.rich()
        text = state.model_dump_json()
        back = PauseState.model_validate_json(text)
        assert back == state
        assert back.model_dump_json() == text
        assert back.approval_digest == state.approval_digest is not None

    def test_the_document_calls_the_phase_state_and_leaves_out_update_bookkeeping(self) -> None:
        state = self.rich()
        document = state.as_document()
        assert document["state"] == "AWAITING_APPROVAL"
        assert "phase" not in document
        assert "applied_updates" not in document
        assert document["approval_digest"] == state.approval_digest

    def test_the_document_reads_back_as_the_state_without_its_update_bookkeeping(self) -> None:
        state = self.rich()
        back = PauseState.model_validate(state.as_document())
        assert back.applied_updates == []
        assert back == state.model_copy(update={"applied_updates": []})
