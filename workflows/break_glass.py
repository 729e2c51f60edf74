"""One break-glass grant: opened, held until a durable timer fires or it is returned, then closed by
the database (login off, privileges revoked, sessions ended, verified) and its statements sealed.

A child of the pause, started with parent-close policy ABANDON: a pause that continues as new (or is
decommissioned) leaves the grant's workflow running, so the grant still ends by itself. The timer
and every step are in this workflow's history: a worker killed at any point is replaced, and the
close runs again until the database confirms it (each of its steps is idempotent). The grant reports
to the pause by signals to the pause's workflow id (whichever run is current).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.break_glass import BreakGlassActivities
    from pausegate.models.break_glass import (
        BreakGlassWorkflowInput,
        GrantClosed,
        GrantOpened,
        GrantRevoked,
        GrantSealed,
        SealGrantInput,
    )
    from pausegate.models.people import SYSTEM_ACTOR
    from pausegate.models.state import Tuning
    from workflows.support import activity_options, error_text, wait_until

OPENED_SIGNAL = "break_glass_opened"
CLOSED_SIGNAL = "break_glass_closed"
TIMER = "its end (timer)"


@workflow.defn(name="BreakGlassWorkflow")
class BreakGlassWorkflow:
    """Hold one grant open until its end, then close and seal it."""

    def __init__(self) -> None:
        self.ended_by: str | None = None

    @workflow.signal
    def end(self, by: str) -> None:
        """The holder or the commander returns the grant early (the pause checked who may)."""
        if self.ended_by is None:
            self.ended_by = by[:512]

    @workflow.query
    def ending(self) -> str | None:
        return self.ended_by

    @workflow.run
    async def run(self, input: BreakGlassWorkflowInput) -> GrantClosed:
        target = input.target
        tuning = Tuning(activity_heartbeat_seconds=input.heartbeat_seconds, urgent_task_queue=input.urgent_task_queue)
        window_start = workflow.now()
        try:
            opened: GrantOpened = await workflow.execute_activity_method(
                BreakGlassActivities.open_break_glass, target,
                **activity_options(tuning, timedelta(minutes=2), attempts=10))
        except ActivityError as exc:
            # whatever an attempt made before failing is taken back before the refusal is reported
            await self._close(tuning, input)
            closed = GrantClosed(grant_id=target.grant_id, opened=False, reason=error_text(exc),
                                 ended_by=SYSTEM_ACTOR)
            await self._report(input, CLOSED_SIGNAL, closed)
            return closed
        await self._report(input, OPENED_SIGNAL, opened)
        left = input.ends_at - workflow.now()
        if left > timedelta(0):
            await wait_until(lambda: self.ended_by is not None, left)
        revoked = await self._close(tuning, input)
        window_end = workflow.now()
        sealed: GrantSealed | None = None
        reason = ""
        try:
            sealed = await workflow.execute_activity_method(
                BreakGlassActivities.seal_break_glass,
                SealGrantInput(target=target, window_start=window_start, window_end=window_end),
                **activity_options(tuning, timedelta(minutes=30), attempts=20))
        except ActivityError as exc:
            reason = f"statements not sealed: {error_text(exc)}"
        closed = GrantClosed(grant_id=target.grant_id, opened=True, reason=reason, logging=opened.logging,
                             opened_at=window_start, closed_at=window_end,
                             sessions_terminated=revoked.sessions_terminated, verified=revoked.verified,
                             statements=sealed.statements if sealed else 0,
                             evidence=sealed.evidence if sealed else None, reads=sealed.reads if sealed else 0,
                             reads_report=sealed.reads_report if sealed else None, ended_by=self.ended_by or TIMER)
        await self._report(input, CLOSED_SIGNAL, closed)
        return closed

    async def _close(self, tuning: Tuning, input: BreakGlassWorkflowInput) -> GrantRevoked:
        # never given up: a grant that cannot be closed must keep being closed (attempts=0: unlimited)
        revoked: GrantRevoked = await workflow.execute_activity_method(
            BreakGlassActivities.close_break_glass, input.target,
            **activity_options(tuning, timedelta(minutes=2), attempts=0, urgent=True))
        return revoked

    async def _report(self, input: BreakGlassWorkflowInput, signal: str, arg: object) -> None:
        try:
            await workflow.get_external_workflow_handle(input.pause_workflow_id).signal(signal, arg)
        except Exception as exc:  # a pause already closed: the grant's own result keeps the record
            workflow.logger.warning("break-glass report not delivered: %s", type(exc).__name__)
