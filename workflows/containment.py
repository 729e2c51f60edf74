"""Containment, the first part of a pause: halt the agents, revoke access, seal the evidence.

Once the evidence is sealed and access revoked, the copies of the data made in the window are found
(the sealed statement log, then the catalog, then the servers the deployment names) and each is
contained and verified; a copy left uncontained keeps containment from completing.

The three run in parallel, each until the target confirms it. A step that hits an error no retry
can mend (an unknown connection, a program the fleet does not know) is shown as *blocked* and
waits for the commander, who retries it once the cause is fixed or waives it with a reason; the
other steps carry on meanwhile. Before a resume, the same targets are asked whether containment
still holds (``Containment.check``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.access import AccessActivities
    from activities.copies import CopiesActivities
    from activities.data_stop import DataStopActivities
    from activities.evidence import EvidenceActivities
    from activities.fleet import FleetActivities
    from pausegate.errors import non_retryable_error_types
    from pausegate.models.access import DatasetContainment, DatasetRevoked
    from pausegate.models.copies import (
        ContainPauseCopiesInput,
        CopiesSummary,
        FindPauseCopiesInput,
        SettleCopiesInput,
        SettledCopy,
    )
    from pausegate.models.data_stop import DataStopInput
    from pausegate.models.evidence import SnapshotResult
    from pausegate.models.origins import OriginSummary
    from pausegate.models.people import PauseRequest
    from pausegate.models.plan import ResumePlan
    from pausegate.models.state import ExposureSummary, PauseState, Tuning
    from pausegate.models.steps import (
        AgentsCheck,
        CheckDatasetInput,
        ContainDatasetInput,
        ContainmentCheck,
        ExposureReportInput,
        HaltAgentsInput,
        HaltAgentsResult,
        SnapshotInput,
        VerifyDatasetInput,
    )
    from pausegate.policy import transitions as t
    from workflows.origins import ORIGINS_PATCH, derive_origins
    from workflows.support import activity_options, error_text, wait_until

T = TypeVar("T")

AGENTS_STEP = "containment.agents"
COPIES_STEP = "containment.copies"
# Pauses begun before copies were found and contained replay without these steps.
COPIES_PATCH = "containment-copies"
# Pauses begun before the halt loop woke for a long history replay with it looking only between retries.
LONG_HISTORY_WAKES_PATCH = "containment-wakes-for-long-history"


def _is_final(exc: ActivityError) -> bool:
    """Whether the activity failed with an error no retry can mend (the final classes of the error tree)."""
    cause = exc.cause
    return isinstance(cause, ApplicationError) and (cause.non_retryable or cause.type in non_retryable_error_types())


class Containment:
    """The containment steps of one pause. They change its state, send notifications through it and ask
    it whether its history has grown long enough to continue as new; nothing else of the workflow."""

    def __init__(self, state: PauseState, request: PauseRequest, tuning: Tuning, *,
                 notify: Callable[[str, str], None], history_is_long: Callable[[], bool]) -> None:
        self.state = state
        self.request = request
        self.runbook = request.runbook
        self.tuning = tuning
        self.notify = notify
        self.history_is_long = history_is_long

    def _options(
        self, start_to_close: timedelta, *, attempts: int = 5, urgent: bool = False
    ) -> workflow.ActivityConfig:
        return activity_options(self.tuning, start_to_close, attempts=attempts, urgent=urgent)

    async def contain(self) -> bool:
        """Halt agents, revoke access and seal evidence in parallel, until every target is confirmed
        (or waived). False when history grew enough to continue as new first."""
        t.start_containment(self.state, self.runbook, workflow.now())
        results = await asyncio.gather(self._halt_agents(), self._revoke_access(), self._seal_evidence())
        if not all(results):
            return False
        t.contained(self.state, workflow.now())
        return True

    async def check(self) -> ContainmentCheck:
        """Before resume: whether containment still holds (agents silent, each dataset's access as revoked)."""
        fleet = self.runbook.fleet
        agents: AgentsCheck = await workflow.execute_activity_method(
            FleetActivities.check_agents_silent,
            HaltAgentsInput(connection=fleet.connection, program=self.runbook.program.id,
                            incident_id=self.state.incident_id, reason=self.request.reason,
                            batch_size=fleet.batch_size, concurrency=fleet.concurrency),
            **self._options(timedelta(minutes=10), attempts=10),
        )
        scopes = {d.dataset: d.scope.sha256 for d in self.state.containment.datasets}
        datasets = await asyncio.gather(*(
            workflow.execute_activity_method(
                AccessActivities.check_dataset,
                CheckDatasetInput(pause_key=self.state.evidence_key, dataset=spec, scope_sha256=scopes.get(spec.name)),
                **self._options(timedelta(minutes=10), attempts=10),
            )
            for spec in self.runbook.datasets
        ))
        return ContainmentCheck(agents=agents, datasets=list(datasets))

    async def _halt_agents(self) -> bool:
        fleet = self.runbook.fleet
        delay = self.tuning.halt_retry_initial_seconds
        agents = self.state.containment.agents
        early = workflow.patched(LONG_HISTORY_WAKES_PATCH)
        while not agents.confirmed:
            agents.attempts += 1
            try:
                result: HaltAgentsResult = await workflow.execute_activity_method(
                    FleetActivities.halt_agents,
                    HaltAgentsInput(connection=fleet.connection, program=self.runbook.program.id,
                                    incident_id=self.state.incident_id, reason=self.request.reason,
                                    batch_size=fleet.batch_size, concurrency=fleet.concurrency,
                                    exclude_ids=t.waived_ids(self.state)),
                    **self._options(timedelta(minutes=30), urgent=True),
                )
                t.apply_halt(self.state, result, workflow.now())
                if result.switch_off:
                    # the fleet's clock, the one the agents stamp their rows with
                    agents.switch_off_at = result.switch_off_at or agents.switch_off_at or workflow.now()
            except ActivityError as exc:
                t.halt_failed(self.state, error_text(exc), workflow.now())
                if _is_final(exc) and await self._blocked(AGENTS_STEP, error_text(exc)):
                    t.agents_waived_whole(self.state, workflow.now())
                    break
            if agents.confirmed:
                break
            if self._may_continue_as_new():
                return False
            # Offline agents pick up the program switch when they return; look again later,
            # or at once when the commander waives them, or when history grew long meanwhile (a flood of
            # refusals between two looks must not carry the run past the namespace's limit).
            await wait_until(lambda: agents.confirmed or t.waived_all(self.state)
                             or (early and self._may_continue_as_new()), timedelta(seconds=delay))
            t.settle_waivers(self.state, workflow.now())
            if early and not agents.confirmed and self._may_continue_as_new():
                return False
            delay = min(delay * 2, self.tuning.halt_retry_max_seconds)
        await self._check_data_stop()
        return True

    def _may_continue_as_new(self) -> bool:
        c = self.state.containment
        return self.history_is_long() and not c.datasets_pending and not c.evidence_pending

    async def _check_data_stop(self) -> None:
        """Ask the dataset the agents write to for rows collected after the switch went off (a proving step:
        the regular queue). A failure is recorded; it does not hold containment up."""
        writes, off = self.runbook.fleet.writes, self.state.containment.agents.switch_off_at
        if writes is None or off is None:
            return
        spec = next(d for d in self.runbook.datasets if d.name == writes.dataset)
        try:
            self.state.containment.data_stop = await workflow.execute_activity_method(
                DataStopActivities.check_data_stop,
                DataStopInput(connection=spec.connection, schema_name=spec.schema_name, tables=list(writes.tables),
                              written_at=writes.written_at, switch_off_at=off),
                **self._options(timedelta(minutes=5), attempts=3),
            )
        except ActivityError as exc:
            t.step_failed(self.state, "containment.data_stop", error_text(exc), workflow.now())

    async def _revoke_access(self) -> bool:
        async def contain(name: str) -> None:
            spec = next(d for d in self.runbook.datasets if d.name == name)

            async def revoke_then_verify() -> DatasetContainment:
                # Cutting access is one small activity (the raw catalog is captured in its
                # transaction); deriving the exposure scope from that capture and verifying follow.
                revoked: DatasetRevoked = await workflow.execute_activity_method(
                    AccessActivities.revoke_dataset,
                    ContainDatasetInput(pause_key=self.state.evidence_key, dataset=spec),
                    **self._options(timedelta(minutes=10), urgent=True),
                )
                t.dataset_access_gone(self.state, revoked, workflow.now())
                return await workflow.execute_activity_method(
                    AccessActivities.verify_dataset,
                    VerifyDatasetInput(pause_key=self.state.evidence_key, dataset=spec, revoked=revoked),
                    **self._options(timedelta(minutes=30)),
                )

            result: DatasetContainment | None = await self._until_done(
                f"containment.dataset.{name}",
                revoke_then_verify,
                accept=lambda r: r.verified,
                describe=lambda r: f"{len(r.residual)} residual paths: " + ", ".join(r.residual[:5]),
            )
            if result is None:
                t.dataset_waived(self.state, name)
            else:
                t.dataset_contained(self.state, result, workflow.now())

        await asyncio.gather(*(contain(n) for n in list(self.state.containment.datasets_pending)))
        # Access no REVOKE can close (superusers, owners) blocks sign-off until the commander waives it.
        await workflow.wait_condition(lambda: t.residual_settled(self.state))
        return True

    async def _seal_evidence(self) -> bool:
        """Seal the exposure window up to the pause, then, once access is revoked, the rest of it."""
        exposure = self.runbook.exposure
        started = self.state.started_at
        window_start = exposure.start or (started - exposure.lookback)
        tables = [f"{d.schema_name}.{table}" for d in self.runbook.datasets for table in d.tables]

        async def seal(name: str, segment: int, start: datetime, end: datetime) -> None:
            spec = next(a for a in self.runbook.audit_sources if a.name == name)
            result: SnapshotResult | None = await self._until_done(
                f"containment.evidence.{name}",
                lambda: workflow.execute_activity_method(
                    EvidenceActivities.snapshot_audit_source,
                    SnapshotInput(pause_key=self.state.evidence_key, program=self.runbook.program.id, source=spec,
                                  segment=segment, tables=tables, window_start=start, window_end=end,
                                  datasets=list(self.runbook.datasets)),
                    **self._options(timedelta(hours=2)),
                ),
            )
            if result is not None:
                t.evidence_sealed(self.state, result, segment, workflow.now())

        pending = list(self.state.containment.evidence_pending)
        # Sources sealed one after another keep the evidence chain in a stable order.
        for name in pending:
            await seal(name, 0, window_start, started)
        await workflow.wait_condition(lambda: not self.state.containment.datasets_pending)
        revoked_at = workflow.now()
        for name in pending:
            await seal(name, 1, started, revoked_at)
            t.source_sealed(self.state, name)
        if pending:
            origins = await derive_origins(self, window_start, revoked_at) if workflow.patched(ORIGINS_PATCH) else None
            await self._report_exposure(window_start, revoked_at, origins)
            if workflow.patched(COPIES_PATCH):
                await self._contain_copies(window_start, revoked_at)
        return True

    async def _report_exposure(self, window_start: datetime, revoked_at: datetime,
                               origins: OriginSummary | None = None) -> None:
        """Who saw what, from the sealed database audit records (names stay in the evidence); with the
        origins, a read counts only while a path the reader had was open."""
        database_sources = {a.name for a in self.runbook.audit_sources if a.kind == "postgres_log"}
        bundles = [e.bundle.key for e in self.state.containment.evidence if e.source in database_sources]
        if not bundles:
            return
        exposure = self.runbook.exposure
        summary: ExposureSummary | None = await self._until_done(
            "containment.exposure",
            lambda: workflow.execute_activity_method(
                EvidenceActivities.exposure_report,
                ExposureReportInput(pause_key=self.state.evidence_key, bundles=bundles,
                                    datasets=list(self.runbook.datasets), window_start=window_start,
                                    window_end=revoked_at, statement_budget=exposure.statement_budget,
                                    origins=origins.document if origins is not None else None),
                **self._options(timedelta(hours=1)),
            ),
        )
        if summary is not None:
            t.exposure_reported(self.state, summary, workflow.now())

    async def _contain_copies(self, window_start: datetime, revoked_at: datetime) -> None:
        """Find the copies made in the window, then contain each until the database verifies it. Names
        stay in the copies document; the state holds its reference, counts and copy ids."""
        database_sources = {a.name for a in self.runbook.audit_sources if a.kind == "postgres_log"}
        bundles = [e.bundle.key for e in self.state.containment.evidence if e.source in database_sources]
        # A dataset whose containment the commander waived (its connection unknown, say) is not searched
        # for copies either: the same cause would block this step too, and the waiver already says so.
        waived = set(self.state.containment.waived_steps)
        datasets = [d for d in self.runbook.datasets if f"containment.dataset.{d.name}" not in waived]
        if not datasets:
            return
        found: CopiesSummary | None = await self._until_done(
            f"{COPIES_STEP}.find",
            lambda: workflow.execute_activity_method(
                CopiesActivities.find_pause_copies,
                FindPauseCopiesInput(pause_key=self.state.evidence_key, bundles=bundles, datasets=datasets,
                                     window_start=window_start, window_end=revoked_at,
                                     paused_at=self.state.started_at, program=self.runbook.program.id,
                                     log_sources=[a for a in self.runbook.audit_sources if a.kind == "postgres_log"]),
                **self._options(timedelta(hours=1)),
            ),
        )
        if found is None:
            return
        t.copies_found(self.state, found, workflow.now())
        rounds = 0

        async def contain_round() -> CopiesSummary:
            nonlocal rounds
            summary: CopiesSummary = await workflow.execute_activity_method(
                CopiesActivities.contain_pause_copies,
                ContainPauseCopiesInput(pause_key=self.state.evidence_key, found=found.document, datasets=datasets,
                                        round=rounds),
                **self._options(timedelta(minutes=30)),
            )
            rounds += 1
            t.copies_contained(self.state, summary, workflow.now())
            return summary

        await self._until_done(
            COPIES_STEP, contain_round, accept=lambda r: not r.uncontained,
            describe=lambda r: f"{len(r.uncontained)} copies not contained: " + ", ".join(r.uncontained[:5]),
        )

    async def settle_copies(self, plan: ResumePlan) -> None:
        """Before access returns: each copy dropped, purged or kept quarantined as the plan decided, each
        checked by the database (an activity error undoes the resume like any other)."""
        copies = self.state.containment.copies
        if copies is None or not plan.copies:
            return
        settled: list[SettledCopy] = await workflow.execute_activity_method(
            CopiesActivities.settle_pause_copies,
            SettleCopiesInput(pause_key=self.state.evidence_key, document=copies.document, decisions=plan.copies,
                              data_actions=plan.data_actions, datasets=list(self.runbook.datasets)),
            **self._options(timedelta(minutes=30), attempts=5),
        )
        t.copies_settled(self.state, settled, workflow.now())

    async def _until_done(
        self,
        what: str,
        step: Callable[[], Awaitable[T]],
        accept: Callable[[T], bool] = lambda _: True,
        describe: Callable[[T], str] = lambda _: "not confirmed",
    ) -> T | None:
        """Run a containment step until its result is confirmed, recording each failure; None when the
        commander waived it while it was blocked."""
        delay = self.tuning.halt_retry_initial_seconds
        while True:
            try:
                result = await step()
                if accept(result):
                    return result
                reason = describe(result)
            except ActivityError as exc:
                reason = error_text(exc)
                if _is_final(exc):
                    if await self._blocked(what, reason):
                        return None
                    delay = self.tuning.halt_retry_initial_seconds
                    continue
            t.step_failed(self.state, what, reason, workflow.now())
            await workflow.sleep(timedelta(seconds=delay))
            delay = min(delay * 2, self.tuning.halt_retry_max_seconds)

    async def _blocked(self, step: str, reason: str) -> bool:
        """Wait, blocked, for the commander's decision: True when they waived the step, False to retry."""
        t.block_step(self.state, step, reason, workflow.now())
        self.notify("containment.blocked", f"{self.runbook.program.name}: {step} is blocked and needs the "
                    f"commander: {reason}")
        await workflow.wait_condition(lambda: not t.is_blocked(self.state, step))
        return t.is_waived_step(self.state, step)
