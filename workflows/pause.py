"""The pause of one program: contain, review, sign off, resume.

One workflow per open pause, id ``pause/<program>``. It holds no secrets and no
collected data: connections are names, evidence is references and digests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.access import AccessActivities
    from activities.evidence import EvidenceActivities
    from activities.fleet import FleetActivities
    from activities.notify import NotifyActivities
    from pausegate.errors import NON_RETRYABLE_ERRORS
    from pausegate.models.access import DatasetContainment, RestoreResult
    from pausegate.models.evidence import EvidenceRef, SnapshotResult
    from pausegate.models.pause import (
        MAX_LISTED_IDS,
        AgentsCheck,
        AppliedUpdate,
        Approval,
        ApproveInput,
        ArchiveTimelineInput,
        CheckDatasetInput,
        CompleteItemInput,
        ContainDatasetInput,
        ContainmentCheck,
        ContainmentProgress,
        DecommissionInput,
        DiffPlanInput,
        ExposureReportInput,
        ExposureSummary,
        HaltAgentsInput,
        HaltAgentsResult,
        ItemStatus,
        NotifyInput,
        PauseSnapshot,
        PauseState,
        PauseStatus,
        PauseWorkflowInput,
        PlanDiffSummary,
        PlanRecord,
        ProposePlanInput,
        RefusalInput,
        RejectPlanInput,
        ReportInput,
        RestoreGrantsInput,
        ResumeAgentsInput,
        ResumeAgentsResult,
        ResumePlan,
        SnapshotInput,
        TimelineEntry,
        UpdateReceipt,
        WaiveAgentsInput,
        Waiver,
        WaiveResidualInput,
    )
    from pausegate.policy import review
    from pausegate.policy.digests import approval_digest, checklist_digest, plan_digest
    from pausegate.policy.review import PolicyViolation

T = TypeVar("T")

# Update ids remembered across continue-as-new; a client retrying later than this many updates
# sends a new request anyway.
APPLIED_UPDATES_KEPT = 500

FAST = timedelta(seconds=30)


def pause_workflow_id(program: str) -> str:
    """The one workflow id a program's open pause has."""
    return f"pause/{program}"


def _retry(attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=attempts,
        non_retryable_error_types=list(NON_RETRYABLE_ERRORS),
    )


def _reject(exc: PolicyViolation) -> ApplicationError:
    return ApplicationError(exc.reason, type=exc.code, non_retryable=True)


def _error_text(exc: BaseException) -> str:
    """The root cause of an activity failure, without stack traces (they may quote targets)."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"[:500]
    return str(cause)[:500]


async def _wait(condition: Callable[[], bool], timeout: timedelta | None) -> bool:
    """Wait for ``condition`` up to ``timeout``; False when the time ran out."""
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except TimeoutError:
        return False
    return True


@workflow.defn(name="PauseWorkflow")
class PauseWorkflow:
    """Contain a program, run its review, and resume it only under an approved plan."""

    @workflow.init
    def __init__(self, input: PauseWorkflowInput) -> None:
        self.request = input.request
        self.runbook = input.request.runbook
        self.tuning = input.tuning
        snap = input.snapshot
        if snap is None:
            started = workflow.now()
            stamp = f"{started:%Y%m%dT%H%M%SZ}"
            if workflow.patched("unique-evidence-key"):
                # Two pauses of one program in the same second must not share incident ids (the
                # fleet deduplicates by them) or evidence keys (write-once: the second would fail
                # or, for a bundle, be handed the first one's).
                stamp = f"{stamp}-{workflow.uuid4().hex[:8]}"
            snap = PauseSnapshot(
                state=PauseState.ACTIVE,
                incident_id=f"{self.runbook.program.id}-{stamp}",
                evidence_key=f"{self.runbook.program.id}/{stamp}",
                started_at=started,
                containment=ContainmentProgress(),
                checklist=[
                    ItemStatus(
                        id=item.id,
                        title=item.title,
                        roles=list(item.roles),
                        depends_on=list(item.depends_on),
                        evidence_required=list(item.evidence),
                        due_at=started + item.due if item.due else None,
                    )
                    for item in self.runbook.checklist
                ],
            )
        self.state = snap.state
        self.incident_id = snap.incident_id
        self.started_at = snap.started_at
        self.containment = snap.containment
        self.checklist = snap.checklist
        self.plan = snap.plan
        self.approvals = list(snap.approvals)
        self.decommission_votes = list(snap.decommission_votes)
        self.waivers = list(snap.waivers)
        self.timeline = list(snap.timeline)
        self.timeline_archived = list(snap.timeline_archived)
        self.run_count = snap.run_count
        # Temporal deduplicates update ids within one run only; these carry the guarantee across runs.
        self.applied_updates = {a.id: a.receipt for a in snap.applied_updates}
        self.report: EvidenceRef | None = None
        self.updates_this_run = 0
        self.outbox: list[NotifyInput] = []
        self.pause_key = snap.evidence_key or f"{self.runbook.program.id}/{self.started_at:%Y%m%dT%H%M%SZ}"

    # ------------------------------------------------------------------ the procedure

    @workflow.run
    async def run(self, input: PauseWorkflowInput) -> PauseStatus:
        notifier = asyncio.create_task(self._deliver_notifications())
        if self.state == PauseState.ACTIVE:
            self._record(self.request.commander.id, "pause.started", self.request.reason)
            self._enter(PauseState.CONTAINING, self.request.commander.id, "kill switch pulled")

        while True:
            if self.state == PauseState.CONTAINING:
                if not await self._contain():
                    return await self._continue_as_new(notifier)
                self._enter(PauseState.UNDER_REVIEW, "pausegate", self._containment_summary())
                self._maybe_await_approval()

            outcome = await self._review()
            if outcome == "continue_as_new":
                return await self._continue_as_new(notifier)
            if outcome == "decommission":
                self._enter(PauseState.DECOMMISSIONED, "pausegate", "decommissioned by quorum")
                return await self._finish(notifier)
            # Quorum reached on the current plan.
            self._enter(PauseState.RESUMING, "pausegate", "quorum reached on the current plan")
            check = await self._check_containment()
            if not check.holds:
                self._refuse_resume(check)
                continue
            restore, resumed = await self._resume()
            self._enter(PauseState.RESUMED, "pausegate", f"{resumed.resumed} agents resumed, "
                        f"{sum(r.granted for r in restore)} grants restored")
            return await self._finish(notifier, restore, resumed)

    # ------------------------------------------------------------------ containment

    async def _contain(self) -> bool:
        """Halt agents, revoke access and seal evidence in parallel, until every target is confirmed
        (or waived). False when history grew enough to continue as new first."""
        c = self.containment
        if c.started_at is None:
            c.started_at = workflow.now()
            c.datasets_pending = [d.name for d in self.runbook.datasets]
            c.evidence_pending = [a.name for a in self.runbook.audit_sources]
        results = await asyncio.gather(self._halt_agents(), self._revoke_access(), self._seal_evidence())
        if not all(results):
            return False
        c.contained_at = workflow.now()
        return True

    async def _halt_agents(self) -> bool:
        fleet = self.runbook.fleet
        delay = self.tuning.halt_retry_initial_seconds
        agents = self.containment.agents
        while not agents.confirmed:
            agents.attempts += 1
            try:
                result: HaltAgentsResult = await workflow.execute_activity_method(
                    FleetActivities.halt_agents,
                    HaltAgentsInput(
                        connection=fleet.connection,
                        program=self.runbook.program.id,
                        incident_id=self.incident_id,
                        reason=self.request.reason,
                        batch_size=fleet.batch_size,
                        concurrency=fleet.concurrency,
                        exclude_ids=self._waived_ids(),
                    ),
                    **self._opts(timedelta(minutes=30)),
                )
                self._apply_halt(result)
            except ActivityError as exc:
                agents.last_error = _error_text(exc)
                self._record("pausegate", "containment.agents.failed", agents.last_error, accepted=False)
            if agents.confirmed:
                break
            if self._history_is_long() and not self.containment.datasets_pending \
                    and not self.containment.evidence_pending:
                return False
            # Offline agents pick up the program switch when they return; look again later,
            # or at once when the commander waives them.
            await _wait(lambda: agents.confirmed or self._waived_all(), timedelta(seconds=delay))
            if self._waived_all():
                self._confirm_agents_by_waiver()
            delay = min(delay * 2, self.tuning.halt_retry_max_seconds)
        return True

    def _apply_halt(self, result: HaltAgentsResult) -> None:
        agents = self.containment.agents
        first = agents.total == 0
        changed = result.unconfirmed != agents.unconfirmed
        agents.switch_off = result.switch_off
        agents.total = result.total
        agents.halted = result.halted
        agents.not_found = result.not_found
        agents.unconfirmed = result.unconfirmed
        agents.unconfirmed_ids = list(result.unconfirmed_ids[:MAX_LISTED_IDS])
        agents.last_error = None
        if result.switch_off and result.unconfirmed == 0:
            agents.confirmed = True
            self._record("pausegate", "containment.agents.halted",
                         f"{result.halted} of {result.total} agents halted and confirmed; "
                         f"{agents.waived} waived")
        elif first or changed:
            self._record("pausegate", "containment.agents.unconfirmed",
                         f"{result.halted} of {result.total} halted; {result.unconfirmed} unconfirmed: "
                         + ", ".join(result.unconfirmed_ids[:10]))
        if self._waived_all():
            self._confirm_agents_by_waiver()

    def _waived_ids(self) -> list[str]:
        return sorted({a for w in self.waivers for a in w.agent_ids})

    def _waived_all(self) -> bool:
        agents = self.containment.agents
        if agents.confirmed or not agents.switch_off or agents.unconfirmed == 0:
            return False
        if any(w.all_unconfirmed for w in self.waivers):
            return True
        waived = set(self._waived_ids())
        return agents.unconfirmed <= len(agents.unconfirmed_ids) and set(agents.unconfirmed_ids) <= waived

    def _confirm_agents_by_waiver(self) -> None:
        agents = self.containment.agents
        agents.waived = agents.unconfirmed
        agents.confirmed = True
        self._record("pausegate", "containment.agents.waived",
                     f"{agents.unconfirmed} unconfirmed agents waived by the commander")

    async def _revoke_access(self) -> bool:
        async def contain(name: str) -> None:
            spec = next(d for d in self.runbook.datasets if d.name == name)
            result: DatasetContainment = await self._until_done(
                f"containment.dataset.{name}",
                lambda: workflow.execute_activity_method(
                    AccessActivities.contain_dataset,
                    ContainDatasetInput(pause_key=self.pause_key, dataset=spec),
                    **self._opts(timedelta(minutes=30)),
                ),
                accept=lambda r: r.verified,
                describe=lambda r: f"{len(r.residual)} residual paths: " + ", ".join(r.residual[:5]),
            )
            self.containment.datasets = [d for d in self.containment.datasets if d.dataset != name] + [result]
            self.containment.datasets_pending = [d for d in self.containment.datasets_pending if d != name]
            self._record("pausegate", "containment.dataset.revoked",
                         f"{name}: {result.roles_with_access} roles had access by {result.grants_recorded} grants; "
                         f"{result.revoked} revoked and verified; scope {result.scope.sha256[:12]}")
            if result.residual_count and name not in self.containment.residual_waived:
                self._record("pausegate", "containment.dataset.residual",
                             f"{name}: {result.residual_count} paths no REVOKE can close: "
                             + ", ".join(result.residual[:10]), accepted=False)

        await asyncio.gather(*(contain(n) for n in list(self.containment.datasets_pending)))
        # Access no REVOKE can close (superusers, owners) blocks sign-off until the commander waives it.
        await workflow.wait_condition(self._residual_settled)
        return True

    def _residual_settled(self) -> bool:
        return all(d.residual_count == 0 or d.dataset in self.containment.residual_waived
                   for d in self.containment.datasets)

    async def _seal_evidence(self) -> bool:
        """Seal the exposure window up to the pause, then, once access is revoked, the rest of it."""
        exposure = self.runbook.exposure
        window_start = exposure.start or (self.started_at - exposure.lookback)
        tables = [f"{d.schema_name}.{t}" for d in self.runbook.datasets for t in d.tables]

        async def seal(name: str, segment: int, start: datetime, end: datetime) -> None:
            spec = next(a for a in self.runbook.audit_sources if a.name == name)
            result: SnapshotResult = await self._until_done(
                f"containment.evidence.{name}",
                lambda: workflow.execute_activity_method(
                    EvidenceActivities.snapshot_audit_source,
                    SnapshotInput(pause_key=self.pause_key, program=self.runbook.program.id, source=spec,
                                  segment=segment, tables=tables, window_start=start, window_end=end),
                    **self._opts(timedelta(hours=2)),
                ),
            )
            self.containment.evidence.append(result)
            self._record("pausegate", "containment.evidence.sealed",
                         f"{name} segment {segment}: {result.bundle.records} records in {result.chunks} chunks, "
                         f"manifest {result.bundle.sha256[:12]}")

        pending = list(self.containment.evidence_pending)
        # Sources sealed one after another keep the evidence chain in a stable order.
        for name in pending:
            await seal(name, 0, window_start, self.started_at)
        await workflow.wait_condition(lambda: not self.containment.datasets_pending)
        revoked_at = workflow.now()
        for name in pending:
            await seal(name, 1, self.started_at, revoked_at)
            self.containment.evidence_pending = [e for e in self.containment.evidence_pending if e != name]
        if pending and workflow.patched("exposure-report"):
            await self._report_exposure()
        return True

    async def _report_exposure(self) -> None:
        """Who saw what, from the sealed database audit records (names stay in the evidence)."""
        database_sources = {a.name for a in self.runbook.audit_sources if a.kind == "postgres_log"}
        bundles = [e.bundle.uri.removeprefix("evidence://") for e in self.containment.evidence
                   if e.source in database_sources]
        if not bundles:
            return
        summary: ExposureSummary = await self._until_done(
            "containment.exposure",
            lambda: workflow.execute_activity_method(
                EvidenceActivities.exposure_report,
                ExposureReportInput(pause_key=self.pause_key, bundles=bundles),
                **self._opts(timedelta(hours=1)),
            ),
        )
        self.containment.exposure = summary
        self._record("pausegate", "containment.exposure",
                     f"{summary.readers} roles read the dataset in the exposure window "
                     f"({summary.statements} statements, {summary.failed_reads} refused); "
                     f"report {summary.report.sha256[:12]}")

    async def _until_done(
        self,
        what: str,
        step: Callable[[], Awaitable[T]],
        accept: Callable[[T], bool] = lambda _: True,
        describe: Callable[[T], str] = lambda _: "not confirmed",
    ) -> T:
        """Run a containment step until its result is confirmed, recording each failure."""
        delay = self.tuning.halt_retry_initial_seconds
        while True:
            try:
                result = await step()
                if accept(result):
                    return result
                reason = describe(result)
            except ActivityError as exc:
                reason = _error_text(exc)
            self.containment.errors = [*self.containment.errors[-19:], f"{what}: {reason}"]
            self._record("pausegate", f"{what}.failed", reason, accepted=False)
            await workflow.sleep(timedelta(seconds=delay))
            delay = min(delay * 2, self.tuning.halt_retry_max_seconds)

    def _containment_summary(self) -> str:
        c = self.containment
        elapsed = (c.contained_at - c.started_at).total_seconds() if c.contained_at and c.started_at else 0.0
        return (f"contained in {elapsed:.1f}s: {c.agents.halted}/{c.agents.total} agents halted "
                f"({c.agents.waived} waived), {len(c.datasets)} datasets revoked, "
                f"{len(c.evidence)} evidence bundles sealed")

    # ------------------------------------------------------------------ review

    async def _review(self) -> str:
        """Wait for reviewers and approvers; returns what happens next."""
        while True:
            self._maybe_await_approval()
            due = self._next_due()
            timeout = max(due - workflow.now(), timedelta(seconds=1)) if due else None
            await _wait(
                lambda: self._quorum_on_plan() or self._quorum_to_decommission() or self._history_is_long(),
                timeout,
            )
            self._send_reminders()
            if self._quorum_to_decommission():
                return "decommission"
            if self._quorum_on_plan():
                return "resume"
            if self._history_is_long():
                return "continue_as_new"

    def _maybe_await_approval(self) -> None:
        ready = (
            self.containment.contained_at is not None
            and all(i.done for i in self.checklist)
            and self.plan is not None
        )
        if ready and self.state == PauseState.UNDER_REVIEW:
            self._enter(PauseState.AWAITING_APPROVAL, "pausegate",
                        f"checklist complete, plan proposed; approve digest {self._current_digest()}")
        elif not ready and self.state == PauseState.AWAITING_APPROVAL:
            self._enter(PauseState.UNDER_REVIEW, "pausegate", "plan withdrawn or review reopened")

    def _current_digest(self) -> str | None:
        if self.plan is None:
            return None
        return approval_digest(self.plan.plan_digest, checklist_digest(self.checklist))

    def _quorum_on_plan(self) -> bool:
        return (
            self.state == PauseState.AWAITING_APPROVAL
            and review.quorum_met(self.runbook, self.approvals, self._current_digest())
        )

    def _quorum_to_decommission(self) -> bool:
        return self.state in review.REVIEW_STATES and self.containment.contained_at is not None \
            and review.quorum_met(self.runbook, self.decommission_votes, None)

    def _next_due(self) -> datetime | None:
        dues = [i.due_at for i in self.checklist if i.due_at and not i.done and not i.reminded]
        return min(dues) if dues else None

    def _send_reminders(self) -> None:
        now = workflow.now()
        for item in self.checklist:
            if item.due_at and item.due_at <= now and not item.done and not item.reminded:
                item.reminded = True
                self._record("pausegate", "checklist.overdue", f"{item.id} was due {item.due_at.isoformat()}")
                self._notify("checklist.overdue", f"Checklist item '{item.title}' is overdue "
                             f"(roles: {', '.join(item.roles)})")

    def _void_approvals(self, why: str) -> None:
        if self.approvals:
            self._record("pausegate", "approvals.voided", f"{len(self.approvals)} approvals voided: {why}")
        self.approvals = []

    # ------------------------------------------------------------------ updates

    @workflow.update
    def complete_item(self, input: CompleteItemInput) -> UpdateReceipt:
        """A reviewer completes (or amends) a checklist item with its evidence."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        item = next(i for i in self.checklist if i.id == input.item_id)
        amended = item.done
        item.completed_by = input.actor.id
        item.completed_at = workflow.now()
        item.evidence = list(input.evidence)
        item.note = input.note
        self._record(input.actor.id, "checklist.amended" if amended else "checklist.completed",
                     f"{item.id} with evidence " + ", ".join(f"{e.name}={e.uri}" for e in input.evidence))
        self._void_approvals(f"checklist item {item.id} changed")
        self._maybe_await_approval()
        return self._receipt(f"item {item.id} complete")

    @complete_item.validator
    def validate_complete_item(self, input: CompleteItemInput) -> None:
        if self._already_applied() is not None:
            return
        try:
            review.check_completion(self.runbook, self.state, self.checklist, input)
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.update
    async def propose_plan(self, input: ProposePlanInput) -> UpdateReceipt:
        """Propose (or replace) the resume plan; earlier approvals are void. The plan is shown with
        what it changes against the pre-incident exposure scope (who loses access, who keeps it)."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        digest = plan_digest(input.plan)
        self.plan = PlanRecord(plan=input.plan, plan_digest=digest, proposed_by=input.actor.id,
                               proposed_at=workflow.now())
        self._record(input.actor.id, "plan.proposed",
                     f"plan {digest[:12]}: agents {input.plan.agents.mode}, {len(input.plan.grants)} grants")
        self._void_approvals("a new plan was proposed")
        self._maybe_await_approval()
        receipt = self._receipt("plan proposed")
        # Pauses proposed before plans were diffed replay without the diff.
        if not workflow.patched("plan-diff"):
            return receipt
        diff = await self._diff_plan(input.plan, digest)
        # Another proposal may have replaced this one while the diff was computed.
        if diff and self.plan is not None and self.plan.plan_digest == digest:
            self.plan = self.plan.model_copy(update={"diff": diff})
        return receipt

    async def _diff_plan(self, plan: ResumePlan, digest: str) -> list[PlanDiffSummary]:
        contained = {d.dataset for d in self.containment.datasets}
        specs = [d for d in self.runbook.datasets if d.name in contained]
        try:
            return list(await asyncio.gather(*(
                workflow.execute_activity_method(
                    AccessActivities.diff_plan,
                    DiffPlanInput(pause_key=self.pause_key, dataset=spec, plan_digest=digest,
                                  grants=[g for g in plan.grants if g.dataset == spec.name]),
                    **self._opts(timedelta(minutes=2), attempts=3),
                )
                for spec in specs
            )))
        except ActivityError as exc:
            # The diff informs reviewers; its failure must not lose the proposal.
            self._record("pausegate", "plan.diff.failed", _error_text(exc), accepted=False)
            return []

    @propose_plan.validator
    def validate_propose_plan(self, input: ProposePlanInput) -> None:
        if self._already_applied() is not None:
            return
        try:
            review.check_proposal(self.runbook, self.state, input)
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.update
    def approve_plan(self, input: ApproveInput) -> UpdateReceipt:
        """An approver approves the current plan and review by its digest."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        self.approvals.append(Approval(actor_id=input.actor.id, role=input.role, digest=input.digest,
                                       at=workflow.now(), comment=input.comment))
        self._record(input.actor.id, "plan.approved",
                     f"as {input.role}, digest {input.digest[:12]} "
                     f"({len(self.approvals)} of {self.runbook.resume_policy.quorum})")
        return self._receipt(f"approval {len(self.approvals)} of {self.runbook.resume_policy.quorum} recorded")

    @approve_plan.validator
    def validate_approve_plan(self, input: ApproveInput) -> None:
        if self._already_applied() is not None:
            return
        try:
            review.check_approval(self.runbook, self.state, self.request.commander, self.plan,
                                  self._current_digest(), self.approvals, input)
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.update
    def reject_plan(self, input: RejectPlanInput) -> UpdateReceipt:
        """Reject the current plan; it and its approvals are void."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        self._record(input.actor.id, "plan.rejected", input.reason)
        self.plan = None
        self._void_approvals("the plan was rejected")
        self._maybe_await_approval()
        return self._receipt("plan rejected")

    @reject_plan.validator
    def validate_reject_plan(self, input: RejectPlanInput) -> None:
        if self._already_applied() is not None:
            return
        try:
            review.check_rejection(self.runbook, self.state, self.plan, input)
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.update
    def waive_agents(self, input: WaiveAgentsInput) -> UpdateReceipt:
        """The commander stops waiting for unconfirmed agents, with a reason."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        self.waivers.append(Waiver(agent_ids=list(input.agent_ids), all_unconfirmed=input.all_unconfirmed,
                                   reason=input.reason, by=input.actor.id, at=workflow.now()))
        what = "all unconfirmed agents" if input.all_unconfirmed else ", ".join(input.agent_ids[:10])
        self._record(input.actor.id, "containment.agents.waiver", f"{what}: {input.reason}")
        return self._receipt("waiver recorded")

    @waive_agents.validator
    def validate_waive_agents(self, input: WaiveAgentsInput) -> None:
        if self._already_applied() is not None:
            return
        agents = self.containment.agents
        try:
            review.check_waiver(self.runbook, self.state, 0 if agents.confirmed else agents.unconfirmed,
                                agents.unconfirmed_ids, input)
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.update
    def waive_residual(self, input: WaiveResidualInput) -> UpdateReceipt:
        """The commander accepts a dataset's residual access (superusers, owners), with a reason."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        self.containment.residual_waived = [*self.containment.residual_waived, input.dataset]
        self._record(input.actor.id, "containment.dataset.residual_waived", f"{input.dataset}: {input.reason}")
        return self._receipt("residual access waived")

    @waive_residual.validator
    def validate_waive_residual(self, input: WaiveResidualInput) -> None:
        if self._already_applied() is not None:
            return
        try:
            review.check_residual_waiver(
                self.runbook, self.state, {d.dataset: d.residual_count for d in self.containment.datasets},
                set(self.containment.residual_waived), input,
            )
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.update
    def decommission(self, input: DecommissionInput) -> UpdateReceipt:
        """An approver votes to end the program for good."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        self.decommission_votes.append(Approval(actor_id=input.actor.id, role=input.role, digest="decommission",
                                                at=workflow.now(), comment=input.reason))
        self._record(input.actor.id, "decommission.voted",
                     f"as {input.role} ({len(self.decommission_votes)} of "
                     f"{self.runbook.resume_policy.quorum}): {input.reason}")
        return self._receipt("decommission vote recorded")

    @decommission.validator
    def validate_decommission(self, input: DecommissionInput) -> None:
        if self._already_applied() is not None:
            return
        try:
            review.check_decommission(self.runbook, self.state, self.request.commander,
                                      self.decommission_votes, input)
        except PolicyViolation as exc:
            raise _reject(exc) from None

    @workflow.signal
    def record_refusal(self, input: RefusalInput) -> None:
        """The API reports an action it refused, so the timeline shows every refusal."""
        self._record(input.actor, input.action, input.reason, accepted=False)

    @workflow.query
    def status(self) -> PauseStatus:
        """Everything a person may read about this pause."""
        return PauseStatus(
            pause_id=workflow.info().workflow_id,
            incident_id=self.incident_id,
            evidence_key=self.pause_key,
            program=self.runbook.program.id,
            state=self.state,
            reason=self.request.reason,
            severity=self.request.severity,
            commander=self.request.commander.id,
            started_at=self.started_at,
            containment=self.containment,
            checklist=self.checklist,
            plan=self.plan,
            approval_digest=self._current_digest(),
            approvals=self.approvals,
            decommission_approvals=self.decommission_votes,
            quorum=self.runbook.resume_policy.quorum,
            timeline=self.timeline,
            timeline_archived=self.timeline_archived,
            report=self.report,
            run_count=self.run_count,
        )

    # ------------------------------------------------------------------ resume

    async def _check_containment(self) -> ContainmentCheck:
        agents: AgentsCheck = await workflow.execute_activity_method(
            FleetActivities.check_agents_silent,
            HaltAgentsInput(connection=self.runbook.fleet.connection, program=self.runbook.program.id,
                            incident_id=self.incident_id, reason=self.request.reason,
                            batch_size=self.runbook.fleet.batch_size, concurrency=self.runbook.fleet.concurrency),
            **self._opts(timedelta(minutes=10), attempts=10),
        )
        datasets = await asyncio.gather(*(
            workflow.execute_activity_method(
                AccessActivities.check_dataset,
                CheckDatasetInput(pause_key=self.pause_key, dataset=spec),
                **self._opts(timedelta(minutes=10), attempts=10),
            )
            for spec in self.runbook.datasets
        ))
        return ContainmentCheck(agents=agents, datasets=list(datasets))

    def _refuse_resume(self, check: ContainmentCheck) -> None:
        problems = []
        if not check.agents.switch_off:
            problems.append("the program switch is on")
        if check.agents.collecting:
            problems.append(
                f"{check.agents.collecting} agents collecting: " + ", ".join(check.agents.collecting_ids[:5])
            )
        for d in check.datasets:
            if not d.contained:
                problems.append(f"dataset {d.dataset} reopened: " + ", ".join(d.violations[:5]))
        self._record("pausegate", "resume.refused", "containment no longer holds: " + "; ".join(problems),
                     accepted=False)
        self._void_approvals("containment no longer held at resume")
        # Contain again: the recorded scope is reused, revocation and halting are idempotent.
        self.containment.agents.confirmed = False
        self.containment.datasets_pending = [d.name for d in self.runbook.datasets]
        self.containment.contained_at = None
        self._enter(PauseState.CONTAINING, "pausegate", "re-containing before review continues")

    async def _resume(self) -> tuple[list[RestoreResult], ResumeAgentsResult]:
        assert self.plan is not None
        plan = self.plan.plan
        restore = await asyncio.gather(*(
            workflow.execute_activity_method(
                AccessActivities.restore_grants,
                RestoreGrantsInput(pause_key=self.pause_key, dataset=spec,
                                   grants=[g for g in plan.grants if g.dataset == spec.name]),
                **self._opts(timedelta(minutes=30), attempts=20),
            )
            for spec in self.runbook.datasets
        ))
        for r in restore:
            self._record("pausegate", "resume.grants", f"{r.dataset}: {r.granted} grants restored, "
                         f"verified={r.verified}" + (f", missing {', '.join(r.missing[:5])}" if r.missing else ""),
                         accepted=r.verified)
        fleet = self.runbook.fleet
        resumed: ResumeAgentsResult = await workflow.execute_activity_method(
            FleetActivities.resume_agents,
            ResumeAgentsInput(connection=fleet.connection, program=self.runbook.program.id,
                              incident_id=self.incident_id, selection=plan.agents,
                              batch_size=fleet.batch_size, concurrency=fleet.concurrency),
            **self._opts(timedelta(minutes=30), attempts=20),
        )
        self._record("pausegate", "resume.agents", f"{resumed.resumed} agents resumed, {resumed.unconfirmed} "
                     "will resume when they return")
        return list(restore), resumed

    # ------------------------------------------------------------------ bookkeeping

    async def _finish(self, notifier: asyncio.Task[None], restore: list[RestoreResult] | None = None,
                      resumed: ResumeAgentsResult | None = None) -> PauseStatus:
        report: EvidenceRef = await workflow.execute_activity_method(
            EvidenceActivities.write_report,
            ReportInput(pause_key=self.pause_key, status=self.status(), restore=restore or [], resume=resumed),
            **self._opts(timedelta(minutes=5), attempts=20),
        )
        self.report = report
        self._record("pausegate", "report.written", f"report {report.uri} ({report.sha256[:12]})")
        await self._drain(notifier)
        return self.status()

    async def _continue_as_new(self, notifier: asyncio.Task[None]) -> Any:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain(notifier)
        keep = self.tuning.timeline_keep
        if len(self.timeline) > keep:
            older = self.timeline[:-keep]
            ref = await workflow.execute_activity_method(
                EvidenceActivities.archive_timeline,
                ArchiveTimelineInput(pause_key=self.pause_key, sequence=len(self.timeline_archived), entries=older),
                **self._opts(timedelta(minutes=5), attempts=20),
            )
            self.timeline_archived.append(ref)
            self.timeline = self.timeline[-keep:]
        snapshot = PauseSnapshot(
            state=self.state, incident_id=self.incident_id, evidence_key=self.pause_key, started_at=self.started_at,
            containment=self.containment, checklist=self.checklist, plan=self.plan, approvals=self.approvals,
            decommission_votes=self.decommission_votes, waivers=self.waivers, timeline=self.timeline,
            timeline_archived=self.timeline_archived, run_count=self.run_count + 1,
            applied_updates=[AppliedUpdate(id=k, receipt=v) for k, v in self.applied_updates.items()],
        )
        workflow.continue_as_new(PauseWorkflowInput(request=self.request, tuning=self.tuning, snapshot=snapshot))

    def _opts(self, start_to_close: timedelta, *, attempts: int = 5) -> dict[str, Any]:
        """Activity options: every activity heartbeats (in the background while it waits on a target),
        so a dead worker's activity is retried within seconds, not at its start-to-close timeout."""
        return {
            "start_to_close_timeout": start_to_close,
            "heartbeat_timeout": timedelta(seconds=self.tuning.activity_heartbeat_seconds),
            "retry_policy": _retry(attempts),
        }

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.tuning.continue_as_new_after_events
            or self.updates_this_run >= self.tuning.continue_as_new_after_updates
        )

    def _receipt(self, message: str) -> UpdateReceipt:
        receipt = UpdateReceipt(state=self.state, message=message, digest=self._current_digest())
        info = workflow.current_update_info()
        if info is not None:
            self.applied_updates[info.id] = receipt
            while len(self.applied_updates) > APPLIED_UPDATES_KEPT:
                del self.applied_updates[next(iter(self.applied_updates))]
        return receipt

    def _already_applied(self) -> UpdateReceipt | None:
        """The receipt of this update id if an earlier run (or attempt) applied it."""
        info = workflow.current_update_info()
        return self.applied_updates.get(info.id) if info is not None else None

    def _record(self, actor: str, action: str, detail: str = "", *, accepted: bool = True) -> None:
        self.timeline.append(TimelineEntry(at=workflow.now(), actor=actor, action=action,
                                           detail=detail[:2000], accepted=accepted))

    def _enter(self, state: PauseState, actor: str, detail: str) -> None:
        previous = self.state
        self.state = state
        self._record(actor, f"state.{state.value.lower()}", detail)
        self._notify("state.changed", f"{self.runbook.program.name}: {previous.value} → {state.value}. {detail}")

    def _notify(self, event: str, text: str) -> None:
        for target in self.runbook.notifications:
            self.outbox.append(NotifyInput(connection=target.connection, pause_id=workflow.info().workflow_id,
                                           program=self.runbook.program.id, event=event, state=self.state,
                                           text=text))

    async def _deliver_notifications(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.outbox))
            message = self.outbox[0]
            try:
                await workflow.execute_activity_method(
                    NotifyActivities.notify, message,
                    **self._opts(FAST, attempts=5),
                )
            except ActivityError as exc:
                # People still see the state in the status; a lost chat message must not stop the pause.
                self._record("pausegate", "notification.failed", f"{message.event}: {_error_text(exc)}",
                             accepted=False)
            self.outbox.pop(0)

    async def _drain(self, notifier: asyncio.Task[None]) -> None:
        await workflow.wait_condition(lambda: not self.outbox)
        notifier.cancel()
