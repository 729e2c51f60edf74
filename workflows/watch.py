"""The watch of a resumed program: its plan's conditions re-checked every interval for the runbook's
watch period. Drift pulls the kill switch again (a new pause, the watch its commander) and notifies;
an employee's consent withdrawn meanwhile halts their agents. One workflow per program, its id the
pause's with ``watch/`` for ``pause/`` (``watch/<program>``), started by the resume as a child the pause
abandons when it closes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.conditions import ConditionActivities
    from activities.notify import NotifyActivities
    from activities.watch import WatchActivities
    from pausegate.errors import ActionRefused
    from pausegate.models.conditions import (
        ConditionsCheck,
        ConsentOutcome,
        HaltUnconsentedInput,
        WithdrawalWritten,
        WriteWithdrawalInput,
    )
    from pausegate.models.people import Actor
    from pausegate.models.phase import Phase
    from pausegate.models.runbook import WatchSpec
    from pausegate.models.steps import NotifyInput
    from pausegate.models.watch import (
        MAX_WITHDRAWN,
        WITHDRAWALS_KEPT,
        ProgramInput,
        PullSwitchInput,
        PullSwitchResult,
        WatchInput,
        WatchReceipt,
        WatchState,
        WatchStatus,
        Withdrawal,
        WithdrawConsentInput,
    )
    from pausegate.policy import authority
    from pausegate.policy import conditions as pc
    from workflows.conditions import verify_conditions
    from workflows.support import activity_options, error_text


# Watches started before checks that cannot run counted as drift replay the old way (their history has
# no marker); every other watch fails closed.
FAIL_CLOSED_PATCH = "watch-fails-closed"
# Watches started before withdrawals were written back to the consent table replay without the write.
WITHDRAWAL_WRITTEN_PATCH = "watch-withdrawal-written-back"


def watch_actor(program: str) -> str:
    """The system actor the watch acts as (the commander of a pause it starts): no person's id can be it."""
    return f"pausegate:watch/{program}"


@workflow.defn(name="WatchWorkflow")
class WatchWorkflow:
    """Re-check a resumed program's conditions until the watch period ends or they drift."""

    @workflow.init
    def __init__(self, input: WatchInput) -> None:
        self.input = input
        self.runbook = input.runbook
        spec = input.runbook.watch
        period = spec.period if spec is not None else timedelta(days=30)
        interval = spec.interval if spec is not None else timedelta(hours=1)
        now = workflow.now()
        self.state = input.state or WatchState(
            watch_id=workflow.info().workflow_id, program=input.runbook.program.id, pause_id=input.pause_id,
            started_at=now, ends_at=now + period, interval_seconds=interval.total_seconds(),
            pause_run_id=parent.run_id if (parent := workflow.info().parent) is not None else None,
        )
        self.halting = asyncio.Lock()
        self.sending = asyncio.Lock()
        self.outbox: list[NotifyInput] = []
        self.last_failure = ""

    @workflow.run
    async def run(self, input: WatchInput) -> WatchState:
        s = self.state
        interval = timedelta(seconds=s.interval_seconds)
        while s.status == "watching":
            if await self._superseded():
                s.status = "superseded"
                break
            check = await self._check()
            if check is None:
                if self._unchecked_is_drift():
                    await self._pull_switch(self._unchecked_drift())
                    break
            elif not check.holds:
                await self._pull_switch("; ".join(check.problems))
                break
            now = workflow.now()
            if now >= s.ends_at:
                s.status = self._end_status()
                if s.status == "unchecked":
                    self._notify("watch.unchecked", f"{s.program}: the watch period ended without one check of "
                                 "the plan's conditions that could run: nothing shows that they held")
                break
            await self._drain()
            # Checks sit on a fixed grid from the start (a slow check does not push the later ones back);
            # the last one is at the end of the period.
            due = s.started_at + interval * ((now - s.started_at) // interval + 1)
            await workflow.sleep(min(due, s.ends_at) - now)
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                s.run_count += 1
                workflow.continue_as_new(input.model_copy(update={"state": s}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain()
        return s

    # ------------------------------------------------------------------ checks

    async def _check(self) -> ConditionsCheck | None:
        """The conditions now; None when the check could not run (people are told; the next interval
        tries again)."""
        s = self.state
        try:
            actions_key = self.input.actions_key or self.input.pause_key
            check = await verify_conditions(self.runbook, actions_key, self.input.plan, self.input.switched_on_at,
                                            self._options(timedelta(minutes=10)), withdrawn=list(s.withdrawn),
                                            written_since=self.input.written_since)
        except ActivityError as exc:
            self._notify("watch.check_failed", f"{s.program}: the watch could not check the plan's conditions: "
                         f"{error_text(exc)}")
            if workflow.patched(FAIL_CLOSED_PATCH):
                s.failed_checks += 1
                self.last_failure = error_text(exc)
                return None
            # Before the patch, a check that could not run passed as one that held.
            return ConditionsCheck(agents_collecting=0, off_profile=0, unconsented=0, dropped_rows=0)
        s.checks += 1
        s.failed_checks = 0
        s.last_check_at = workflow.now()
        s.last_check = check
        return check

    def _unchecked_is_drift(self) -> bool:
        """Anyone who can make the check fail (a held lock, a refused connection) must not blind the
        watch: enough failures in a row count as drift."""
        spec = self.runbook.watch
        limit = spec.failed_checks if spec is not None else WatchSpec.model_fields["failed_checks"].default
        return self.state.failed_checks >= limit

    def _unchecked_drift(self) -> str:
        return (f"{self.state.failed_checks} checks in a row could not run (the last: {self.last_failure}): "
                "the conditions cannot be shown to hold")

    def _end_status(self) -> WatchStatus:
        """A watch that never completed a check shows nothing held: it does not end as "ended"."""
        if self.state.checks == 0 and workflow.patched(FAIL_CLOSED_PATCH):
            return "unchecked"
        return "ended"

    async def _superseded(self) -> bool:
        """A pause of the program opened since (pulled by someone else): the watch has nothing left to do."""
        try:
            run: str | None = await workflow.execute_activity_method(
                WatchActivities.open_pause_run, ProgramInput(program=self.state.program),
                **self._options(timedelta(minutes=1)),
            )
        except ActivityError:
            return False
        # The pause that started the watch is still closing (writing its report) at first.
        return run is not None and run != self.state.pause_run_id

    async def _pull_switch(self, drift: str) -> None:
        s = self.state
        s.drift = drift[:2000]
        program = s.program
        reason = f"watch: the resume plan's conditions no longer hold: {s.drift}"[:2000]
        commander = Actor(id=watch_actor(program), roles=list(self.runbook.roles.commander))
        started: PullSwitchResult = await workflow.execute_activity_method(
            WatchActivities.pull_switch,
            PullSwitchInput(runbook=self.runbook, commander=commander, reason=reason, tuning=self.input.tuning,
                            keys=self.input.keys),
            **self._options(timedelta(minutes=2), attempts=0),
        )
        s.status = "drifted"
        s.repaused = f"{started.pause_id} ({started.run_id})" if started.run_id else started.pause_id
        self._notify("watch.drift", f"{program}: {reason}. Kill switch pulled again ({s.repaused}).")
        await self._drain()

    # ------------------------------------------------------------------ consent withdrawn

    @workflow.update
    async def withdraw_consent(self, input: WithdrawConsentInput) -> WatchReceipt:
        """A privacy officer records an employee's withdrawn consent: that employee's agents are halted now
        (offline ones when they return) and every later check treats them as without consent."""
        s = self.state
        async with self.halting:
            outcome = await self._halt_unconsented(input.employee)
        # Counted as without consent only once their agents are halted: a check running meanwhile must
        # not take the agents still being halted for drift.
        if input.employee not in s.withdrawn:
            s.withdrawn.append(input.employee)
        written = await self._write_back(input.employee) if workflow.patched(WITHDRAWAL_WRITTEN_PATCH) else None
        s.withdrawals.append(Withdrawal(employee=input.employee, by=input.actor.id, at=workflow.now(),
                                        reason=input.reason, agents_halted=outcome.agents_halted,
                                        agents_pending=outcome.agents_pending,
                                        written_back_at=written.written_at if written is not None else None))
        s.withdrawals = s.withdrawals[-WITHDRAWALS_KEPT:]
        s.withdrawals_total += 1
        message = (f"consent of {input.employee} withdrawn: {outcome.agents_halted} agents halted, "
                   f"{outcome.agents_pending} halted when they return")
        self._notify("watch.consent_withdrawn", f"{s.program}: {message} (by {input.actor.id})")
        await self._drain()
        return WatchReceipt(status=s.status, message=message)

    @withdraw_consent.validator
    def validate_withdraw_consent(self, input: WithdrawConsentInput) -> None:
        try:
            authority.require_consent_officer(self.runbook, input.actor)
            if self.state.status != "watching":
                raise ActionRefused("watch_ended", f"the watch of {self.state.program} has {self.state.status}")
            if pc.consent_source(self.runbook) is None:
                raise ActionRefused("no_consent_source", "the runbook names no consent source")
            if len(self.state.withdrawn) >= MAX_WITHDRAWN and input.employee not in self.state.withdrawn:
                raise ActionRefused("too_many", f"the watch holds at most {MAX_WITHDRAWN} withdrawn consents")
        except ActionRefused as exc:
            raise ApplicationError(exc.reason, type=exc.code, non_retryable=True) from None

    async def _halt_unconsented(self, employee: str) -> ConsentOutcome:
        source = pc.consent_source(self.runbook)
        assert source is not None
        fleet = self.runbook.fleet
        return await workflow.execute_activity_method(
            ConditionActivities.halt_unconsented,
            HaltUnconsentedInput(connection=fleet.connection, program=self.state.program,
                                 incident_id=f"{self.state.watch_id}/withdrawn", pause_key=self.input.pause_key,
                                 source=source, batch_size=fleet.batch_size, concurrency=fleet.concurrency,
                                 withdrawn=list(self.state.withdrawn), only=[employee],
                                 key=f"withdrawn-{employee}"),
            **self._options(timedelta(minutes=30), attempts=20),
        )

    async def _write_back(self, employee: str) -> WithdrawalWritten | None:
        """The withdrawal written to the consent table, so the next resume knows it after this watch is
        gone; None when it could not be (people are told: the watch still counts it)."""
        source = pc.consent_source(self.runbook)
        assert source is not None
        try:
            written: WithdrawalWritten = await workflow.execute_activity_method(
                ConditionActivities.write_withdrawal, WriteWithdrawalInput(source=source, employee=employee),
                **self._options(timedelta(minutes=5), attempts=10),
            )
        except ActivityError as exc:
            self._notify("watch.withdrawal_not_written",
                         f"{self.state.program}: the consent of {employee} withdrawn could not be written to the "
                         f"consent table, so a later resume would not know it: {error_text(exc)}")
            return None
        return written

    @workflow.query
    def status(self) -> WatchState:
        """What the watch knows: checks, the last one's outcome, withdrawals, drift."""
        return self.state

    # ------------------------------------------------------------------ helpers

    def _options(self, start_to_close: timedelta, *, attempts: int = 5) -> Any:
        return activity_options(self.input.tuning, start_to_close, attempts=attempts)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= self.input.tuning.continue_as_new_after_events)

    def _notify(self, event: str, text: str) -> None:
        for target in self.runbook.notifications:
            self.outbox.append(NotifyInput(connection=target.connection, pause_id=self.state.watch_id,
                                           program=self.state.program, event=event, phase=Phase.RESUMED, text=text))

    async def _drain(self) -> None:
        """Send what is waiting, one message at a time (one sender even when handlers call this too)."""
        async with self.sending:
            while self.outbox:
                message = self.outbox.pop(0)
                try:
                    await workflow.execute_activity_method(NotifyActivities.notify, message,
                                                           **self._options(timedelta(seconds=30)))
                except ActivityError:
                    pass  # the watch's state says what happened; a lost chat message must not stop it
