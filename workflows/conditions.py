"""The resume plan's conditions as steps of the pause: checked at proposal, applied before the program
is switched on again (data actions, the narrower profile, halting agents without consent), and
verified before RESUMED is reported. The pause holds one ``PlanConditions`` over its state; the watch
asks ``verify_conditions`` what the resume asked before RESUMED."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

# Resumes from before the server stamped writes to the collected tables replay without the stamp.
SERVER_WRITE_TIME_PATCH = "resume-server-write-time"

with workflow.unsafe.imports_passed_through():
    from activities.conditions import ConditionActivities
    from activities.data_actions import DataActionActivities
    from activities.fleet import FleetActivities
    from pausegate.models.collection import CollectionProfile
    from pausegate.models.conditions import (
        CheckCollectionInput,
        ConditionsCheck,
        ConditionsInput,
        ConsentOutcome,
        HaltUnconsentedInput,
        ResumeConditions,
        SetCollectionInput,
        StampWritesInput,
    )
    from pausegate.models.data_actions import (
        ApplyDataActionInput,
        CheckDataActionsInput,
        DataActionResult,
        DataActionsCheck,
        VerifyDataActionsInput,
    )
    from pausegate.models.people import SYSTEM_ACTOR
    from pausegate.models.plan import ResumePlan
    from pausegate.models.runbook import Runbook
    from pausegate.models.state import PauseState, Tuning
    from pausegate.models.steps import ResumeAgentsInput, ResumeAgentsResult
    from pausegate.models.watch import WatchInput
    from pausegate.policy import conditions as pc
    from workflows.support import activity_options
    from workflows.watch_ids import watch_workflow_id


class PlanConditions:
    """The steps of one pause for its plan's conditions: they read the runbook and change the pause's state."""

    def __init__(self, state: PauseState, runbook: Runbook, tuning: Tuning) -> None:
        self.state = state
        self.runbook = runbook
        self.tuning = tuning

    def _options(self, start_to_close: timedelta, *, attempts: int = 5) -> workflow.ActivityConfig:
        return activity_options(self.tuning, start_to_close, attempts=attempts)

    async def problems(self, plan: ResumePlan) -> list[str]:
        """At proposal: the fleet asked whether it knows the plan's data types; each dataset whether
        the plan's data actions could be applied."""
        checks = []
        if plan.collection is not None:
            checks.append(workflow.execute_activity_method(
                FleetActivities.check_collection,
                CheckCollectionInput(connection=self.runbook.fleet.connection, program=self.runbook.program.id,
                                     data_types=plan.collection.data_types),
                **self._options(timedelta(minutes=2), attempts=3),
            ))
        source = pc.consent_source(self.runbook)
        if plan.consent_only and source is not None:
            checks.append(workflow.execute_activity_method(
                ConditionActivities.check_consent, source, **self._options(timedelta(minutes=2), attempts=3)))
        for spec in self.runbook.datasets:
            actions = [a for a in plan.data_actions if a.dataset == spec.name]
            if actions:
                checks.append(workflow.execute_activity_method(
                    DataActionActivities.check_data_actions, CheckDataActionsInput(dataset=spec, actions=actions),
                    **self._options(timedelta(minutes=2), attempts=3),
                ))
        return [p for ps in await asyncio.gather(*checks) for p in ps]

    async def apply(self, plan: ResumePlan) -> ResumeConditions:
        """Before grants come back and the switch goes on: the data actions in order, then the profile,
        then every agent of an employee without consent halted one by one."""
        results: list[DataActionResult] = []
        datasets = {d.name: d for d in self.runbook.datasets}
        for index, action in enumerate(plan.data_actions):
            result: DataActionResult = await workflow.execute_activity_method(
                DataActionActivities.apply_data_action,
                ApplyDataActionInput(pause_key=self.state.data_actions_key, dataset=datasets[action.dataset],
                                     index=index, action=action),
                **self._options(timedelta(hours=2), attempts=20),
            )
            results.append(result)
            self.state.record(workflow.now(), SYSTEM_ACTOR, "resume.data_action",
                              f"#{index} {result.kind} {result.dataset}.{result.table}"
                              f"{'.' + result.column if result.column else ''}: {result.rows_affected} rows")
        written_since = await self._stamp_writes(plan)
        fleet = self.runbook.fleet
        profile: list[str] | None = None
        if plan.collection is not None:
            applied: CollectionProfile = await workflow.execute_activity_method(
                FleetActivities.set_collection,
                SetCollectionInput(connection=fleet.connection, program=self.runbook.program.id,
                                   incident_id=self.state.incident_id, data_types=plan.collection.data_types),
                **self._options(timedelta(minutes=5), attempts=20),
            )
            profile = applied.data_types
            self.state.record(workflow.now(), SYSTEM_ACTOR, "resume.collection",
                              f"agents capture {', '.join(profile) or 'nothing'}")
        consent: ConsentOutcome | None = None
        source = pc.consent_source(self.runbook)
        if plan.consent_only and source is not None:
            consent = await workflow.execute_activity_method(
                ConditionActivities.halt_unconsented,
                HaltUnconsentedInput(connection=fleet.connection, program=self.runbook.program.id,
                                     incident_id=self.state.incident_id, pause_key=self.state.evidence_key,
                                     source=source, batch_size=fleet.batch_size, concurrency=fleet.concurrency),
                **self._options(timedelta(minutes=30), attempts=20),
            )
            self.state.record(workflow.now(), SYSTEM_ACTOR, "resume.consent",
                              f"{consent.unconsented_employees} employees without consent: {consent.agents_halted} "
                              f"agents halted, {consent.agents_pending} halted when they return; "
                              f"{consent.consenting_employees} employees consented"
                              + (f"; {consent.grants_not_counted} grants not written through the runbook's "
                                 "granting roles did not count" if consent.grants_not_counted else ""))
        return ResumeConditions(profile=profile, consent=consent, data_actions=results, written_since=written_since)

    async def _stamp_writes(self, plan: ResumePlan) -> datetime | None:
        """After the data actions (whose own writes are the plan's, not collection), before the switch:
        the server stamps writes to the tables of the dropped types; its clock then bounds the check."""
        collected = pc.collected_types(self.runbook)
        if plan.collection is None or collected is None:
            return None
        dropped = sorted(set(collected.collection.data_types) - set(plan.collection.data_types))
        if not dropped or not workflow.patched(SERVER_WRITE_TIME_PATCH):
            return None
        at: datetime = await workflow.execute_activity_method(
            ConditionActivities.stamp_writes, StampWritesInput(collected=collected, dropped=dropped),
            **self._options(timedelta(minutes=5), attempts=20),
        )
        return at

    async def resume_agents(self, plan: ResumePlan, input: ResumeAgentsInput) -> ResumeAgentsResult:
        if plan.consent_only:
            consented = input.model_copy(update={"consent": pc.consent_source(self.runbook)})
            return await workflow.execute_activity_method(ConditionActivities.resume_consented_agents, consented,
                                                          **self._options(timedelta(minutes=30), attempts=20))
        return await workflow.execute_activity_method(FleetActivities.resume_agents, input,
                                                      **self._options(timedelta(minutes=30), attempts=20))

    async def start_watch(self, switched_on_at: datetime) -> None:
        """After RESUMED, when the runbook has a watch and the plan conditions to watch: the watch, as a
        child the pause abandons when it closes (recorded in this history, started exactly once)."""
        assert self.state.plan is not None
        plan = self.state.plan.plan
        if self.runbook.watch is None or not pc.has_conditions(plan):
            return
        watch_id = watch_workflow_id(workflow.info().workflow_id)
        try:
            await workflow.start_child_workflow(
                "WatchWorkflow",
                WatchInput(runbook=self.runbook, plan=plan, pause_id=self.state.pause_id,
                           pause_key=self.state.evidence_key, actions_key=self.state.data_actions_key,
                           switched_on_at=switched_on_at, tuning=self.tuning,
                           written_since=self.state.conditions.written_since if self.state.conditions else None,
                           keys=self.state.signoff.ring if self.state.signoff is not None else None),
                id=watch_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                task_timeout=timedelta(seconds=self.tuning.workflow_task_timeout_seconds),
            )
        except WorkflowAlreadyStartedError:
            self.state.record(workflow.now(), SYSTEM_ACTOR, "watch.not_started",
                              f"{watch_id} is still running from an earlier resume", accepted=False)
            return
        spec = self.runbook.watch
        self.state.record(workflow.now(), SYSTEM_ACTOR, "watch.started",
                          f"{watch_id}: conditions checked every {spec.interval} for {spec.period}")

    async def verify(self, plan: ResumePlan, since: datetime) -> ConditionsCheck:
        """Before RESUMED: ``verify_conditions`` for this pause's data actions."""
        written_since = self.state.conditions.written_since if self.state.conditions else None
        return await verify_conditions(self.runbook, self.state.data_actions_key, plan, since,
                                       self._options(timedelta(minutes=10), attempts=10),
                                       written_since=written_since)


async def verify_conditions(runbook: Runbook, actions_key: str, plan: ResumePlan, since: datetime,
                            options: workflow.ActivityConfig, withdrawn: list[str] | None = None,
                            written_since: datetime | None = None) -> ConditionsCheck:
    """Whether the plan's conditions hold now: every collecting agent on the plan's profile and of a
    consenting employee, no row since ``since`` carrying a dropped type, the data actions in force.
    (The resume before RESUMED and the watch after it ask the same.)"""
    input = ConditionsInput(
        connection=runbook.fleet.connection, program=runbook.program.id, since=since,
        data_types=plan.collection.data_types if plan.collection is not None else None,
        consent=pc.consent_source(runbook) if plan.consent_only else None,
        withdrawn=withdrawn or [], collected=pc.collected_types(runbook), written_since=written_since,
    )
    check: ConditionsCheck = await workflow.execute_activity_method(ConditionActivities.check_conditions, input,
                                                                    **options)
    verified = list(await asyncio.gather(*(
        workflow.execute_activity_method(
            DataActionActivities.verify_data_actions,
            VerifyDataActionsInput(pause_key=actions_key, dataset=spec,
                                   actions=[a for a in plan.data_actions if a.dataset == spec.name]),
            **options,
        )
        for spec in runbook.datasets if any(a.dataset == spec.name for a in plan.data_actions)
    )))
    if verified:
        data = DataActionsCheck(ok=all(c.ok for c in verified), problems=[p for c in verified for p in c.problems],
                                results=[r for c in verified for r in c.results])
        check = check.model_copy(update={"data_actions": data})
    return check
