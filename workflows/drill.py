"""A drill: the pause's containment practised on the runbook's canary scope, then restored, every time.

One workflow per drill, id ``drill/<digest of the program>`` (``pausegate.temporal.drills``), apart from
the program's pause: a real pause never waits for a drill. The drill halts the canary agents one by one
(the program's switch stays on), revokes and verifies the canary tables with the pause's own steps,
seals the canary's catalog as evidence labelled a drill, holds for the runbook's time, and restores.

The restore runs whatever happened before it: after success, a failed step, the commander's abort
(a signal or a cancellation), a stop condition the prober saw, or a real pause of the program (then
the canary agents are left halted: they are inside the real pause's scope). A worker or the whole
stack killed resumes the workflow where it was, restore included. It restores the canary's own
snapshot, never a plan, so it needs no quorum, and it is verified: the catalog equal to the snapshot as
sets of entries, the canary agents collecting.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.access import AccessActivities
    from activities.drill import DrillActivities
    from activities.evidence import EvidenceActivities
    from pausegate.errors import ActionRefused
    from pausegate.models.access import DatasetContainment, DatasetRevoked
    from pausegate.models.drill import (
        PROBER_SEALED,
        CanaryAgents,
        CanaryRestored,
        DrillInput,
        DrillOutcome,
        DrillPhase,
        DrillReportInput,
        DrillState,
        HaltCanaryInput,
        ProberFigures,
        ProberReport,
        RestoreCanaryInput,
        StopInput,
    )
    from pausegate.models.evidence import SnapshotResult
    from pausegate.models.people import SYSTEM_ACTOR
    from pausegate.models.runbook import CanarySpec
    from pausegate.models.seals import delivery_problem
    from pausegate.models.steps import ContainDatasetInput, SnapshotInput, VerifyDatasetInput
    from pausegate.policy import authority
    from pausegate.policy import drill as d
    from workflows.support import activity_options, arrived_at, error_text, wait_until

HALT_ROUNDS = 5
"""Rounds of halting the canary agents before the drill counts the fleet as failing it."""

PROBER_WAIT = timedelta(seconds=60)

SEALED_PROBER = "drill-sealed-prober"
"""The patch under which the prober's figures are taken only sealed and addressed (``report_probe``)."""
PROBE_REFUSED = "probe_refused"
PROBE_REFUSALS_RECORDED = 20

DRILL_WINDOW = timedelta(minutes=5)
"""How far before the drill its audit window starts: enough to seal real records, small enough to be quick."""


@workflow.defn(name="DrillWorkflow")
class DrillWorkflow:
    """Contain the canary scope, hold, restore it to its snapshot, and report beside the prober."""

    @workflow.init
    def __init__(self, input: DrillInput) -> None:
        self.request = input.request
        self.runbook = input.request.runbook
        self.tuning = input.tuning
        self.state = d.new_drill(workflow.info().workflow_id, self.request, workflow.now(),
                                 workflow.uuid4().hex[:8])
        self.stop_request: StopInput | None = None
        self.prober_final = False
        # Decided once per run: a run recorded before the prober's figures were addressed takes bare signals.
        self.sealed_prober = workflow.patched(SEALED_PROBER)

    @workflow.run
    async def run(self, input: DrillInput) -> DrillState:
        canary = self.runbook.canary
        if canary is None:
            raise ApplicationError(f"the runbook of {self.state.program} names no canary", type=d.NO_CANARY,
                                   non_retryable=True)
        try:
            # the starter checked this too; a start sent past it (straight to Temporal) contains nothing either
            authority.require_commander(self.runbook, self.request.commander, "starting a drill")
        except ActionRefused as exc:
            raise ApplicationError(exc.reason, type=exc.code, non_retryable=True) from None
        s = self.state
        s.record(workflow.now(), self.request.commander.id, "drill.started", self.request.reason)
        try:
            if not input.pause_checked and await self._pause_open():
                self.stop(StopInput(outcome=DrillOutcome.PREEMPTED, by=SYSTEM_ACTOR,
                                    reason="a pause of the program is open"))
            else:
                await self._practise(canary)
        except asyncio.CancelledError:
            # A cancellation is the commander's abort: the restore below still runs.
            self.stop(StopInput(outcome=DrillOutcome.ABORTED, by=SYSTEM_ACTOR, reason="drill cancelled"))
        finally:
            stop = self.stop_request
            s.outcome = stop.outcome if stop is not None else DrillOutcome.COMPLETED
            s.outcome_reason = stop.reason if stop is not None else "held for the runbook's time"
            await self._restore(canary)
        if input.await_prober:
            await wait_until(lambda: self.prober_final, PROBER_WAIT)
        s.report = await workflow.execute_activity_method(
            DrillActivities.write_drill_report, DrillReportInput(drill_key=s.drill_key, state=s),
            **self._options(timedelta(minutes=5), attempts=20),
        )
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.report", f"report {s.report.uri} ({s.report.sha256[:12]})")
        return s

    # ------------------------------------------------------------------ practice

    async def _practise(self, canary: CanarySpec) -> None:
        s = self.state
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.containing",
                 f"{len(canary.agents)} canary agents, canary schema {canary.schema_name}")
        await asyncio.gather(self._halt(canary), self._revoke(canary))
        if self.stop_request is not None:
            return
        s.phase = DrillPhase.HOLDING
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.holding", f"canary contained; restoring in {canary.hold}")
        await wait_until(lambda: self.stop_request is not None, canary.hold)

    async def _halt(self, canary: CanarySpec) -> None:
        s = self.state
        delay = self.tuning.halt_retry_initial_seconds
        ids = list(canary.agents)
        for round in range(HALT_ROUNDS):
            if self.stop_request is not None:
                return
            try:
                agents: CanaryAgents = await workflow.execute_activity_method(
                    DrillActivities.halt_canary,
                    HaltCanaryInput(connection=self.runbook.fleet.connection, program=s.program,
                                    incident_id=s.incident_id, agent_ids=ids, round=round),
                    **self._options(timedelta(minutes=5), attempts=3, urgent=True),
                )
            except ActivityError as exc:
                return self._failed("drill.halt", exc)
            s.agents_halted_before = sorted({*s.agents_halted_before, *agents.halted_before})
            s.agents_pending = agents.pending_ids
            s.agents_halted = len(canary.agents) - len(agents.pending_ids) - len(agents.not_found)
            if agents.unknown_before:
                s.record(workflow.now(), SYSTEM_ACTOR, "drill.halt.unknown_before",
                         f"the fleet did not say whether {agents.unknown_before} canary agents were halted before "
                         "the drill: the restore resumes them", accepted=False)
            if agents.not_found:
                # The runbook names an agent the fleet does not know: what a drill is there to find.
                self.stop(StopInput(outcome=DrillOutcome.FAILED, by=SYSTEM_ACTOR,
                                    reason=f"drill.halt: the fleet knows no canary agent "
                                           f"{', '.join(agents.not_found[:10])}"))
                s.not_found = agents.not_found
                return
            if not agents.pending_ids:
                s.figures = s.figures.model_copy(
                    update={"switch_off_seconds": d.seconds_between(s.started_at, workflow.now())})
                s.mark("canary-halted", workflow.now())
                s.record(workflow.now(), SYSTEM_ACTOR, "drill.halted",
                         f"{s.agents_halted} canary agents halted ({len(s.agents_halted_before)} were already)")
                return
            ids = agents.pending_ids
            await wait_until(lambda: self.stop_request is not None, timedelta(seconds=delay))
            delay = min(delay * 2, self.tuning.halt_retry_max_seconds)
        self.stop(StopInput(outcome=DrillOutcome.FAILED, by=SYSTEM_ACTOR,
                            reason=f"{len(s.agents_pending)} canary agents not confirmed halted: "
                                   + ", ".join(s.agents_pending[:5])))

    async def _revoke(self, canary: CanarySpec) -> None:
        s = self.state
        if self.stop_request is not None:
            return
        spec = canary.dataset()
        try:
            revoked: DatasetRevoked = await workflow.execute_activity_method(
                AccessActivities.revoke_dataset, ContainDatasetInput(pause_key=s.drill_key, dataset=spec),
                **self._options(timedelta(minutes=10), attempts=3, urgent=True),
            )
            s.snapshot, s.access_revoked = revoked.snapshot, True
            s.figures = s.figures.model_copy(
                update={"access_gone_seconds": d.seconds_between(s.started_at, revoked.access_gone_at)})
            verified: DatasetContainment = await workflow.execute_activity_method(
                AccessActivities.verify_dataset,
                VerifyDatasetInput(pause_key=s.drill_key, dataset=spec, revoked=revoked),
                **self._options(timedelta(minutes=10), attempts=3),
            )
        except ActivityError as exc:
            return self._failed("drill.revoke", exc)
        if not verified.verified:
            self.stop(StopInput(outcome=DrillOutcome.FAILED, by=SYSTEM_ACTOR,
                                reason=f"canary access not verified gone: {', '.join(verified.residual[:5])}"))
            return
        s.mark("canary-revoked", workflow.now())
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.revoked",
                 f"{verified.revoked} statements, {verified.roles_with_access} roles had access, verified")
        await self._seal(canary, revoked.access_gone_at)

    async def _seal(self, canary: CanarySpec, until: datetime) -> None:
        """Seal each audit source's records of the drill's window, as the pause seals the exposure window:
        the sources the runbook names are practised too (a renamed connection fails here, not on the day)."""
        s = self.state
        spec = canary.dataset()
        tables = [f"{spec.schema_name}.{t}" for t in spec.tables]
        for source in self.runbook.audit_sources:  # one after another: a stable order in the evidence chain
            if self.stop_request is not None:
                return
            try:
                sealed: SnapshotResult = await workflow.execute_activity_method(
                    EvidenceActivities.snapshot_audit_source,
                    SnapshotInput(pause_key=s.drill_key, program=s.program, source=source, segment=0, tables=tables,
                                  window_start=s.started_at - DRILL_WINDOW, window_end=until, datasets=[spec]),
                    **self._options(timedelta(minutes=30), attempts=3),
                )
            except ActivityError as exc:
                return self._failed(f"drill.evidence.{source.name}", exc)
            s.evidence.append(sealed.bundle)
        s.mark("evidence-sealed", workflow.now())
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.sealed",
                 f"{len(s.evidence)} audit sources sealed, labelled drill, under {s.drill_key}")

    def _failed(self, step: str, exc: ActivityError) -> None:
        self.state.record(workflow.now(), SYSTEM_ACTOR, f"{step}.failed", error_text(exc), accepted=False)
        self.stop(StopInput(outcome=DrillOutcome.FAILED, by=SYSTEM_ACTOR, reason=f"{step}: {error_text(exc)}"))

    # ------------------------------------------------------------------ restore

    async def _restore(self, canary: CanarySpec) -> None:
        """Until the canary equals its snapshot and its agents collect (or are left to a real pause)."""
        s = self.state
        s.phase = DrillPhase.RESTORING
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.restoring", f"{s.outcome}: {s.outcome_reason}")
        delay = self.tuning.halt_retry_initial_seconds
        while True:
            s.restore_attempts += 1
            try:
                s.restore = await self._restore_access(canary)
                agents_back = await self._restore_agents(canary)
            except ActivityError as exc:
                s.record(workflow.now(), SYSTEM_ACTOR, "drill.restore.failed", error_text(exc), accepted=False)
            else:
                if s.restore.equal and agents_back:
                    break
                s.record(workflow.now(), SYSTEM_ACTOR, "drill.restore.unequal",
                         f"{len(s.restore.differences)} differences; agents pending {', '.join(s.agents_pending[:5])}",
                         accepted=False)
            await workflow.sleep(timedelta(seconds=delay))
            delay = min(delay * 2, self.tuning.halt_retry_max_seconds)
        s.phase = DrillPhase.RESTORED
        s.figures = s.figures.model_copy(update={"restored_seconds": d.seconds_between(s.started_at, workflow.now())})
        s.mark("restored", workflow.now())
        s.record(workflow.now(), SYSTEM_ACTOR, "drill.restored",
                 f"{s.restore.compared} catalog entries equal to the snapshot ({s.restore.statements} statements); "
                 + ("canary agents left to the open pause" if s.agents_left_to_pause
                    else f"{s.agents_collecting} canary agents collecting"))

    async def _restore_access(self, canary: CanarySpec) -> CanaryRestored:
        s = self.state
        result: CanaryRestored = await workflow.execute_activity_method(
            DrillActivities.restore_canary,
            RestoreCanaryInput(drill_key=s.drill_key, dataset=canary.dataset(), snapshot=s.snapshot),
            **self._options(timedelta(minutes=10), attempts=5),
        )
        return result

    async def _restore_agents(self, canary: CanarySpec) -> bool:
        s = self.state
        if d.resumes_agents(s.outcome) and await self._pause_open():
            # a pause began whose start could not tell this drill (its signal is best effort)
            self.stop(StopInput(outcome=DrillOutcome.PREEMPTED, by=SYSTEM_ACTOR,
                                reason="a pause of the program is open"))
        if not d.resumes_agents(s.outcome):
            s.agents_left_to_pause = True
            return True
        # only what the drill halted: an agent halted before it, or unknown to the fleet, stays as it was
        ids = [a for a in canary.agents if a not in s.agents_halted_before and a not in s.not_found]
        if not ids:
            return True
        agents: CanaryAgents = await workflow.execute_activity_method(
            DrillActivities.resume_canary,
            HaltCanaryInput(connection=self.runbook.fleet.connection, program=s.program, incident_id=s.incident_id,
                            agent_ids=ids, round=s.restore_attempts),
            **self._options(timedelta(minutes=5), attempts=5),
        )
        s.agents_collecting, s.agents_pending = agents.confirmed, agents.pending_ids
        return not agents.pending_ids

    # ------------------------------------------------------------------ messages

    @workflow.signal
    def stop(self, input: StopInput) -> None:
        """Stop now and restore: the commander aborts, the prober saw a change outside the canary, or a
        real pause began. The first reason given is the one kept; a stop after the restore began changes
        nothing, except that a real pause still keeps the canary agents halted."""
        s = self.state
        if self.stop_request is None and s.phase in (DrillPhase.CONTAINING, DrillPhase.HOLDING):
            self.stop_request = input
            s.record(workflow.now(), input.by, f"drill.{input.outcome.value}", input.reason)
        elif input.outcome == DrillOutcome.PREEMPTED and s.phase == DrillPhase.RESTORING:
            self.stop_request, s.outcome = input, input.outcome
            s.record(workflow.now(), input.by, "drill.preempted", input.reason)

    @workflow.signal
    def prober_figures(self, figures: ProberFigures) -> None:
        """Figures by a bare signal: carrying no address, anyone able to seal a payload could have sent them
        (the prober reports through ``report_probe``): refused on the timeline, never shown as measured."""
        if self.sealed_prober:
            self._refuse_probe("figures sent by a bare signal, addressed to no drill")
            return
        self._take_probe(figures)

    @workflow.update
    def report_probe(self, input: ProberReport) -> bool:
        """What the prober saw, replaced as it sees more; its last report once it saw the restore. Taken only
        when sealed for this drill's run and this update id (``pausegate.models.seals``)."""
        problem = delivery_problem(input.sealed_for, arrived_at(update=True))
        if problem is not None:
            self._refuse_probe(f"{problem} (from {input.by})")
            raise ApplicationError(problem, type=PROBE_REFUSED, non_retryable=True)
        self.state.prober_via = f"{PROBER_SEALED}, from {input.by}"
        self._take_probe(input.figures)
        return True

    def _take_probe(self, figures: ProberFigures) -> None:
        self.state.prober = figures
        self.prober_final = self.prober_final or figures.restored_seconds is not None

    def _refuse_probe(self, reason: str) -> None:
        self.state.prober_refused += 1
        if self.state.prober_refused <= PROBE_REFUSALS_RECORDED:  # a flood of copies does not grow the timeline
            self.state.record(workflow.now(), SYSTEM_ACTOR, "drill.prober.refused", reason, accepted=False)

    @workflow.query
    def status(self) -> DrillState:
        return self.state

    # ------------------------------------------------------------------ helpers

    async def _pause_open(self) -> bool:
        open_: bool = await workflow.execute_activity_method(
            DrillActivities.pause_open, self.state.program, **self._options(timedelta(minutes=1), attempts=5))
        return open_

    def _options(self, start_to_close: timedelta, *, attempts: int = 5, urgent: bool = False
                 ) -> workflow.ActivityConfig:
        options = activity_options(self.tuning, start_to_close, attempts=attempts, urgent=urgent)
        # A cancelled drill waits for a step in flight to end before restoring: a revoke that commits
        # after the restore would leave the canary closed.
        options["cancellation_type"] = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        return options

