"""The pause of one program: contain, review, sign off, resume.

One workflow per open pause, id ``pause/<digest of the program>`` (``pausegate.temporal.ids``: the
client derives it with a key; this code never needs the key). It holds no secrets and no collected
data: connections are names, evidence is references and digests. Its state is one
``PauseState``; the rules that change it are pure functions in ``pausegate.policy``.

This module holds the procedure, the review and its message handlers, the resume and the end of a
run; the containment steps (``workflows.containment``) and the plan's conditions
(``workflows.conditions``) are helpers the workflow builds over its state in ``__init__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.access import AccessActivities
    from activities.evidence import EvidenceActivities
    from activities.notify import NotifyActivities
    from pausegate.errors import ActionRefused
    from pausegate.models.access import RestoreResult
    from pausegate.models.evidence import EvidenceRef
    from pausegate.models.limits import MAX_NOTE
    from pausegate.models.people import SYSTEM_ACTOR
    from pausegate.models.phase import Phase
    from pausegate.models.plan import PlanDiffSummary, ResumePlan
    from pausegate.models.seals import SealedMessage, delivery_problem
    from pausegate.models.signatures import SignoffRound
    from pausegate.models.state import AppliedUpdate, PauseState, PauseWorkflowInput
    from pausegate.models.steps import (
        ArchiveTimelineInput,
        CheckPlanInput,
        DiffPlanInput,
        NotifyInput,
        ReportInput,
        RestoreGrantsInput,
        ResumeAgentsInput,
        ResumeAgentsResult,
    )
    from pausegate.models.updates import (
        ApproveInput,
        CompleteItemInput,
        DecommissionInput,
        ProposePlanInput,
        RefusalInput,
        RejectPlanInput,
        RetryStepInput,
        UpdateReceipt,
        WaiveAgentsInput,
        WaiveResidualInput,
        WaiveStepInput,
    )
    from pausegate.policy import break_glass as bg
    from pausegate.policy import conditions as pc
    from pausegate.policy import copies, review, signoff
    from pausegate.policy import transitions as t
    from workflows.break_glass_grants import BreakGlassGrants, BreakGlassHandlers
    from workflows.conditions import PlanConditions
    from workflows.containment import Containment
    from workflows.support import ADDRESSED_MESSAGES, activity_options, arrived_at, error_text, wait_until

# Update ids remembered across continue-as-new; a client retrying later than this many updates
# sends a new request anyway.
APPLIED_UPDATES_KEPT = 500

# Pauses whose plans decided no copy replay without the step that carries the decisions out.
RESUME_COPIES_PATCH = "resume-copies"

# Pauses begun before approvals were signed keep counting token approvals, with no key ring or nonce.
SIGNED_APPROVALS_PATCH = "signed-approvals"

ReviewOutcome = Literal["resume", "decommission", "continue_as_new"]

REPLAYED = "replayed"
"""The refusal code of a message that arrived where it was not sealed for (``pausegate.models.seals``)."""


# PINNED on versioned workers (their default behavior, pausegate.temporal.versioning): a run only ever meets
# the worker code it started on and moves to a newer deployment version by continuing as new (see
# _continue_as_new). Not declared here: an unversioned worker cannot complete a task of a workflow type
# that declares a behavior (the server refuses it), and the embedded default may run unversioned.
@workflow.defn(name="PauseWorkflow")
class PauseWorkflow(BreakGlassHandlers):
    """Contain a program, run its review, and resume it only under an approved plan."""

    @workflow.init
    def __init__(self, input: PauseWorkflowInput) -> None:
        self.request = input.request
        self.runbook = input.request.runbook
        self.tuning = input.tuning
        self.sealed_for = input.sealed_for
        # Decided once per run: a run recorded before addresses existed keeps taking messages without one.
        self.addressed = workflow.patched(ADDRESSED_MESSAGES)
        self.refused_start, carried = self._admit_start(input)
        self.state = carried or t.new_pause(workflow.info().workflow_id, input.request, workflow.now(),
                                            workflow.uuid4().hex[:8])
        if self.refused_start is not None or (input.state is not None and carried is None):
            what = "start" if self.refused_start is not None else "carried_state"
            reason = self.refused_start or "a pause takes a carried state only when it continues as new; it starts over"
            t.record_refusal(self.state, RefusalInput(actor=SYSTEM_ACTOR, action=f"refused.{what}",
                                                      reason=f"{REPLAYED}: {reason}"), workflow.now())
        if workflow.patched(SIGNED_APPROVALS_PATCH) and carried is None and self.state.signoff is None:
            self.state.signoff = SignoffRound(ring=input.keys)
        # Temporal deduplicates update ids within one run only; these carry the guarantee across runs.
        self.applied = {a.id: a.receipt for a in self.state.applied_updates}
        self.updates_this_run = 0
        self.outbox: list[NotifyInput] = []
        self.archiving = asyncio.Lock()
        self.switched_on_at = workflow.now()
        # The steps kept in their own modules: each is handed what it uses (the same state object, which
        # they change in place), and containment the two things it asks of the workflow.
        self.containment = Containment(self.state, self.request, self.tuning, notify=self._notify,
                                       history_is_long=self._history_is_long)
        self.plan_conditions = PlanConditions(self.state, self.runbook, self.tuning)
        self.grants = BreakGlassGrants(self.state, self.runbook, self.tuning, notify=self._notify)

    def _admit_start(self, input: PauseWorkflowInput) -> tuple[str | None, PauseState | None]:
        """Why this start is refused (None: it is taken), and the state it may carry. Only continue-as-new
        carries a state (the server sets ``continued_run_id``, nobody's payload can); any other start with
        one is a copy of an older run's input, and its state is left behind."""
        if not self.addressed or workflow.info().continued_run_id is not None:
            return None, input.state
        return delivery_problem(input.sealed_for, arrived_at(update=False)), None

    # ------------------------------------------------------------------ the procedure

    @workflow.run
    async def run(self, input: PauseWorkflowInput) -> PauseState:
        if self.refused_start is not None:
            # The request is not this pause's to act on: nothing is contained or restored in its name.
            raise ApplicationError(f"start refused: {self.refused_start}", type=REPLAYED, non_retryable=True)
        notifier = asyncio.create_task(self._deliver_notifications())
        archiver = asyncio.create_task(self._keep_timeline_bounded())
        if self.state.phase == Phase.ACTIVE:
            self.state.record(workflow.now(), self.request.commander.id, "pause.started", self.request.reason)
            self._enter(Phase.CONTAINING, "kill switch pulled", actor=self.request.commander.id)

        while True:
            if self.state.phase == Phase.CONTAINING:
                if not await self.containment.contain():
                    return await self._continue_as_new(notifier)
                self._enter(Phase.UNDER_REVIEW, t.containment_summary(self.state))
                self._settle_review()

            outcome = await self._review()
            if outcome == "continue_as_new":
                return await self._continue_as_new(notifier)
            if outcome == "decommission":
                self._enter(Phase.DECOMMISSIONED, "decommissioned by quorum")
                archiver.cancel()
                return await self._finish(notifier)
            self._enter(Phase.RESUMING, "quorum reached on the current plan")
            check = await self.containment.check()
            if not check.holds:
                t.refuse_resume(self.state, self.runbook, check, workflow.now())
                self._enter(Phase.CONTAINING, "re-containing before review continues")
                continue
            try:
                restore, resumed = await self._resume()
                held = await self._conditions_hold()
            except ActivityError as exc:
                t.resume_failed(self.state, self.runbook, error_text(exc), workflow.now())
                self._enter(Phase.CONTAINING, "undoing a failed resume before review continues")
                continue
            if not held:
                self._enter(Phase.CONTAINING, "re-containing: the plan's conditions did not hold")
                continue
            t.resumed(self.state, restore, resumed, workflow.now())
            self._enter(Phase.RESUMED, f"switch {'on' if resumed.switch_on else 'off'}, {resumed.collecting} agents "
                        f"collecting, {sum(r.granted for r in restore)} grants restored")
            await self.plan_conditions.start_watch(self.switched_on_at)
            archiver.cancel()
            return await self._finish(notifier, restore, resumed)

    # ------------------------------------------------------------------ review and sign-off

    async def _review(self) -> ReviewOutcome:
        """Wait for reviewers and approvers, reminding owners of overdue items."""
        while True:
            self._settle_review()
            due = t.next_due(self.state)
            timeout = max(due - workflow.now(), timedelta(seconds=1)) if due else None
            await wait_until(lambda: self._decided() is not None, timeout)
            for item in t.overdue(self.state, workflow.now()):
                self._notify("checklist.overdue", f"Checklist item '{item.title}' is overdue "
                             f"(roles: {', '.join(item.roles)})")
            if (outcome := self._decided()) is not None:
                return outcome

    def _decided(self) -> ReviewOutcome | None:
        if t.quorum_to_decommission(self.state, self.runbook):
            return "decommission"
        if t.quorum_on_plan(self.state, self.runbook) and signoff.quorum_holds(self.runbook, self.state):
            return "resume"
        return "continue_as_new" if self._history_is_long() else None

    def _settle_review(self) -> None:
        phase = t.review_phase(self.state)
        if phase == Phase.AWAITING_APPROVAL:
            self._enter(phase, f"checklist complete, plan proposed; approve digest {self.state.approval_digest}")
        elif phase == Phase.UNDER_REVIEW:
            self._enter(phase, "plan withdrawn or review reopened")
        if self.state.signoff is not None:
            signoff.advance(self.state, lambda: workflow.uuid4().hex)

    # ------------------------------------------------------------------ updates

    def _apply(self, input: SealedMessage, change: Callable[[], str]) -> UpdateReceipt:
        """The frame of every update: applied at most once per update id, across runs too, and only where
        it was sealed for."""
        if (seen := self._already_applied()) is not None:
            return seen
        self.updates_this_run += 1
        self._refuse_if_replayed(input)
        message = change()
        self._settle_review()
        receipt = UpdateReceipt(phase=self.state.phase, message=message, digest=self.state.approval_digest)
        info = workflow.current_update_info()
        if info is not None:
            self.applied[info.id] = receipt
            while len(self.applied) > APPLIED_UPDATES_KEPT:
                del self.applied[next(iter(self.applied))]
        return receipt

    def _validate(self, input: SealedMessage, check: Callable[[], None]) -> None:
        """The frame of every validator: a refusal rejects the update, which writes nothing. A message that
        arrived where it was not sealed for passes, so that its handler refuses it on the record (a
        validator cannot write; nobody else would report what a raw client sent)."""
        if self._already_applied() is not None or self._misdelivered(input) is not None:
            return
        try:
            check()
        except ActionRefused as exc:
            raise ApplicationError(exc.reason, type=exc.code, non_retryable=True) from None

    def _already_applied(self) -> UpdateReceipt | None:
        info = workflow.current_update_info()
        return self.applied.get(info.id) if info is not None else None

    def _misdelivered(self, input: SealedMessage) -> str | None:
        return delivery_problem(input.sealed_for, arrived_at(update=True)) if self.addressed else None

    def _refuse_if_replayed(self, input: SealedMessage) -> None:
        """Refuse, on the pause's timeline, an update sealed for another pause or another update id."""
        if (problem := self._misdelivered(input)) is None:
            return
        info = workflow.current_update_info()
        name = info.name if info is not None else "update"
        author = getattr(getattr(input, "actor", None), "id", "?")
        t.record_refusal(self.state, RefusalInput(actor=SYSTEM_ACTOR, action=f"refused.{name}",
                                                  reason=f"{REPLAYED}: {problem} ({author}'s {name})"[:MAX_NOTE]),
                         workflow.now())
        raise ApplicationError(problem, type=REPLAYED, non_retryable=True)

    @workflow.update
    def complete_item(self, input: CompleteItemInput) -> UpdateReceipt:
        """A reviewer completes (or amends) a checklist item with its evidence."""
        return self._apply(input, lambda: t.complete_item(self.state, input, workflow.now()))

    @complete_item.validator
    def validate_complete_item(self, input: CompleteItemInput) -> None:
        def check() -> None:
            review.check_completion(self.runbook, self.state.phase, self.state.checklist, input)
            bg.check_review(self.state, input)  # a grant's review: not its holder's, nor its approver's

        self._validate(input, check)

    @workflow.update
    async def propose_plan(self, input: ProposePlanInput) -> UpdateReceipt:
        """Propose (or replace) the resume plan; earlier approvals are void. The plan is then shown with
        what it changes against the pre-incident exposure scope (who loses access, who keeps it)."""
        repeated = self._already_applied() is not None
        if not repeated:
            self._refuse_if_replayed(input)  # before the plan is checked against the database
            await self._check_plan(input.plan)
        receipt = self._apply(input, lambda: t.propose_plan(self.state, input, workflow.now()))
        if repeated or self.state.plan is None:
            return receipt
        digest = self.state.plan.plan_digest
        diff = await self._diff_plan(input.plan, digest)
        # Another proposal may have replaced this one while the diff was computed.
        if diff and self.state.plan is not None and self.state.plan.plan_digest == digest:
            self.state.plan = self.state.plan.model_copy(update={"diff": diff})
        return receipt

    @propose_plan.validator
    def validate_propose_plan(self, input: ProposePlanInput) -> None:
        def check() -> None:
            review.check_proposal(self.runbook, self.state.phase, input)
            pc.check_plan_conditions(self.runbook, input.plan)
            copies.check_plan_copies(self.runbook, self.state.containment.copies, input.plan, input.actor)

        self._validate(input, check)

    @workflow.update
    def approve_plan(self, input: ApproveInput) -> UpdateReceipt:
        """An approver approves the current plan and review by its digest."""
        return self._apply(input, lambda: signoff.approve(self.state, self.runbook, input, workflow.now(),
                                                          t.approve_plan))

    @approve_plan.validator
    def validate_approve_plan(self, input: ApproveInput) -> None:
        s = self.state
        def check() -> None:
            review.check_approval(self.runbook, s.phase, self.request.commander, s.plan, s.approval_digest,
                                  s.approvals, input)
            signoff.check(self.runbook, s, input)

        self._validate(input, check)

    @workflow.update
    def reject_plan(self, input: RejectPlanInput) -> UpdateReceipt:
        """Reject the current plan; it and its approvals are void."""
        return self._apply(input, lambda: signoff.reject(self.state, self.runbook, input, workflow.now(),
                                                         t.reject_plan))

    @reject_plan.validator
    def validate_reject_plan(self, input: RejectPlanInput) -> None:
        def check() -> None:
            review.check_rejection(self.runbook, self.state.phase, self.state.plan, input)
            # Gated by the pause's sign-off round, which only runs that took the signed-approvals patch have.
            signoff.check_rejection(self.runbook, self.state, input)

        self._validate(input, check)

    @workflow.update
    def waive_agents(self, input: WaiveAgentsInput) -> UpdateReceipt:
        """The commander stops waiting for unconfirmed agents, with a reason."""
        return self._apply(input, lambda: t.waive_agents(self.state, input, workflow.now()))

    @waive_agents.validator
    def validate_waive_agents(self, input: WaiveAgentsInput) -> None:
        agents = self.state.containment.agents
        unconfirmed = 0 if agents.confirmed else agents.unconfirmed
        self._validate(input, lambda: review.check_waiver(self.runbook, self.state.phase, unconfirmed,
                                                   agents.unconfirmed_ids, input))

    @workflow.update
    def waive_residual(self, input: WaiveResidualInput) -> UpdateReceipt:
        """The commander accepts a dataset's residual access (superusers, owners), with a reason."""
        return self._apply(input, lambda: t.waive_residual(self.state, input, workflow.now()))

    @waive_residual.validator
    def validate_waive_residual(self, input: WaiveResidualInput) -> None:
        c = self.state.containment
        residual = {d.dataset: d.residual_count for d in c.datasets}
        self._validate(input, lambda: review.check_residual_waiver(self.runbook, self.state.phase, residual,
                                                            set(c.residual_waived), input))

    @workflow.update
    def retry_step(self, input: RetryStepInput) -> UpdateReceipt:
        """The commander asks a blocked containment step to run again, once its cause is fixed."""
        return self._apply(input, lambda: t.retry_step(self.state, input, workflow.now()))

    @retry_step.validator
    def validate_retry_step(self, input: RetryStepInput) -> None:
        blocked = [b.step for b in self.state.containment.blocked]
        self._validate(input, lambda: review.check_step_decision(self.runbook, self.state.phase, blocked, input))

    @workflow.update
    def waive_step(self, input: WaiveStepInput) -> UpdateReceipt:
        """The commander stops waiting for a blocked containment step, with a reason."""
        return self._apply(input, lambda: t.waive_step(self.state, input, workflow.now()))

    @waive_step.validator
    def validate_waive_step(self, input: WaiveStepInput) -> None:
        blocked = [b.step for b in self.state.containment.blocked]
        self._validate(input, lambda: review.check_step_decision(self.runbook, self.state.phase, blocked, input))

    @workflow.update
    def decommission(self, input: DecommissionInput) -> UpdateReceipt:
        """An approver votes to end the program for good."""
        return self._apply(input, lambda: t.vote_decommission(self.state, input, workflow.now()))

    @decommission.validator
    def validate_decommission(self, input: DecommissionInput) -> None:
        self._validate(input, lambda: review.check_decommission(self.runbook, self.state.phase, self.request.commander,
                                                         self.state.decommission_approvals, input))

    @workflow.signal
    def record_refusal(self, input: RefusalInput) -> None:
        """The API reports an action it refused, so the timeline shows every refusal."""
        t.record_refusal(self.state, input, workflow.now())

    @workflow.signal
    def wake(self) -> None:
        """Nothing to apply: the workflow task it causes is where a pause pinned to an older worker version
        continues as new onto the current one (a release wakes every open pause; docs/deployment.md)."""

    @workflow.query
    def status(self) -> PauseState:
        """Everything a person may read about this pause."""
        return self.state

    # ------------------------------------------------------------------ resume

    async def _resume(self) -> tuple[list[RestoreResult], ResumeAgentsResult]:
        assert self.state.plan is not None
        plan = self.state.plan.plan
        self.state.resume_attempts += 1
        self.state.conditions = await self.plan_conditions.apply(plan) if pc.has_conditions(plan) else None
        if plan.copies and workflow.patched(RESUME_COPIES_PATCH):
            await self.containment.settle_copies(plan)
        restore = await asyncio.gather(*(
            workflow.execute_activity_method(
                AccessActivities.restore_grants,
                RestoreGrantsInput(pause_key=self.state.evidence_key, dataset=spec,
                                   grants=[g for g in plan.grants if g.dataset == spec.name]),
                **self._options(timedelta(minutes=30), attempts=20),
            )
            for spec in self.runbook.datasets
        ))
        now = workflow.now()
        for r in restore:
            missing = f", missing {', '.join(r.missing[:5])}" if r.missing else ""
            self.state.record(now, SYSTEM_ACTOR, "resume.grants",
                              f"{r.dataset}: {r.granted} grants restored, verified={r.verified}{missing}",
                              accepted=r.verified)
        fleet = self.runbook.fleet
        self.switched_on_at = workflow.now()
        resumed = await self.plan_conditions.resume_agents(
            plan,
            ResumeAgentsInput(connection=fleet.connection, program=self.runbook.program.id,
                              incident_id=self.state.incident_id, selection=plan.agents,
                              batch_size=fleet.batch_size, concurrency=fleet.concurrency),
        )
        self.state.record(workflow.now(), SYSTEM_ACTOR, "resume.agents",
                          f"switch {'on' if resumed.switch_on else 'off'}: {resumed.collecting} agents collecting "
                          f"({resumed.resumed} resumed one by one), {resumed.unconfirmed} will resume when they return")
        return list(restore), resumed

    async def _conditions_hold(self) -> bool:
        """Before RESUMED: the plan's conditions verified (a failed check is refused like drift)."""
        assert self.state.plan is not None
        plan = self.state.plan.plan
        if self.state.conditions is None:
            return True
        check = await self.plan_conditions.verify(plan, self.switched_on_at)
        self.state.conditions = self.state.conditions.model_copy(update={"check": check})
        if not check.holds:
            pc.refuse_conditions(self.state, self.runbook, check, workflow.now())
            return False
        self.state.record(workflow.now(), SYSTEM_ACTOR, "resume.conditions",
                          f"conditions hold: {check.agents_collecting} agents collecting on the plan's terms")
        return True

    async def _check_plan(self, plan: ResumePlan) -> None:
        """Refuse a plan the live database cannot apply (a missing role, table or column)."""
        problems = await asyncio.gather(*(
            workflow.execute_activity_method(
                AccessActivities.check_plan,
                CheckPlanInput(dataset=spec, grants=[g for g in plan.grants if g.dataset == spec.name]),
                **self._options(timedelta(minutes=2), attempts=3),
            )
            for spec in self.runbook.datasets if any(g.dataset == spec.name for g in plan.grants)
        ))
        found = [p for ps in problems for p in ps]
        if pc.has_conditions(plan):
            found += await self.plan_conditions.problems(plan)
        if found:
            raise ApplicationError("; ".join(found)[:2000], type="invalid_plan", non_retryable=True)

    async def _diff_plan(self, plan: ResumePlan, digest: str) -> list[PlanDiffSummary]:
        contained = {d.dataset: d.scope.sha256 for d in self.state.containment.datasets}
        try:
            return list(await asyncio.gather(*(
                workflow.execute_activity_method(
                    AccessActivities.diff_plan,
                    DiffPlanInput(pause_key=self.state.evidence_key, dataset=spec, plan_digest=digest,
                                  grants=[g for g in plan.grants if g.dataset == spec.name],
                                  scope_sha256=contained[spec.name]),
                    **self._options(timedelta(minutes=2), attempts=3),
                )
                for spec in self.runbook.datasets if spec.name in contained
            )))
        except ActivityError as exc:
            # The diff informs reviewers; its failure must not lose the proposal.
            self.state.record(workflow.now(), SYSTEM_ACTOR, "plan.diff.failed", error_text(exc), accepted=False)
            return []

    # ------------------------------------------------------------------ the end of a run

    async def _finish(self, notifier: asyncio.Task[None], restore: list[RestoreResult] | None = None,
                      resumed: ResumeAgentsResult | None = None) -> PauseState:
        report: EvidenceRef = await workflow.execute_activity_method(
            EvidenceActivities.write_report,
            ReportInput(pause_key=self.state.evidence_key, status=self.state, restore=restore or [], resume=resumed),
            **self._options(timedelta(minutes=5), attempts=20),
        )
        self.state.report = report
        self.state.record(workflow.now(), SYSTEM_ACTOR, "report.written", f"report {report.uri} ({report.sha256[:12]})")
        await self._drain(notifier)
        return self.state

    async def _continue_as_new(self, notifier: asyncio.Task[None]) -> Any:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain(notifier)
        await self._archive_timeline()
        s = self.state
        s.run_count += 1
        s.applied_updates = [AppliedUpdate(id=k, receipt=v) for k, v in self.applied.items()]
        # A newer worker version is current: the next run starts on it (upgrade on continue-as-new).
        upgrade = workflow.info().is_target_worker_deployment_version_changed()
        workflow.continue_as_new(PauseWorkflowInput(request=self.request, tuning=self.tuning, state=s,
                                                    sealed_for=self.sealed_for),
                                 initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE
                                 if upgrade else None)

    async def _keep_timeline_bounded(self) -> None:
        """In every phase, containment included: past twice the kept length, older entries go to evidence."""
        while True:
            await workflow.wait_condition(lambda: len(self.state.timeline) > 2 * self.tuning.timeline_keep)
            await self._archive_timeline()

    async def _archive_timeline(self) -> None:
        async with self.archiving:
            s, keep = self.state, self.tuning.timeline_keep
            if len(s.timeline) <= keep:
                return
            older = s.timeline[:-keep]
            ref = await workflow.execute_activity_method(
                EvidenceActivities.archive_timeline,
                ArchiveTimelineInput(pause_key=s.evidence_key, sequence=len(s.timeline_archived), entries=older),
                **self._options(timedelta(minutes=5), attempts=20),
            )
            s.timeline_archived.append(ref)
            s.timeline = s.timeline[len(older):]

    # ------------------------------------------------------------------ helpers

    def _options(
        self, start_to_close: timedelta, *, attempts: int = 5, urgent: bool = False
    ) -> workflow.ActivityConfig:
        return activity_options(self.tuning, start_to_close, attempts=attempts, urgent=urgent)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            # not history, but the same remedy: a newer worker version is current, and this run is pinned
            or info.is_target_worker_deployment_version_changed()
            or info.get_current_history_length() >= self.tuning.continue_as_new_after_events
            or self.updates_this_run >= self.tuning.continue_as_new_after_updates
        )

    def _enter(self, phase: Phase, detail: str, *, actor: str = SYSTEM_ACTOR) -> None:
        previous = t.enter(self.state, phase, workflow.now(), actor, detail)
        self._notify("state.changed", f"{self.runbook.program.name}: {previous.value} → {phase.value}. {detail}")

    def _notify(self, event: str, text: str) -> None:
        for target in self.runbook.notifications:
            self.outbox.append(NotifyInput(connection=target.connection, pause_id=self.state.pause_id,
                                           program=self.runbook.program.id, event=event, phase=self.state.phase,
                                           text=text))

    async def _deliver_notifications(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.outbox))
            message = self.outbox[0]
            try:
                await workflow.execute_activity_method(NotifyActivities.notify, message,
                                                       **self._options(timedelta(seconds=30)))
            except ActivityError as exc:
                # People still see the phase in the status; a lost chat message must not stop the pause.
                self.state.record(workflow.now(), SYSTEM_ACTOR, "notification.failed",
                                  f"{message.event}: {error_text(exc)}", accepted=False)
            self.outbox.pop(0)

    async def _drain(self, notifier: asyncio.Task[None]) -> None:
        await workflow.wait_condition(lambda: not self.outbox)
        notifier.cancel()
