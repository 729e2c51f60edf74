"""The pause's side of break-glass grants: requests, approvals and early ends change its state (the
rules are ``pausegate.policy.break_glass``); each started grant runs as a child workflow
(``workflows.break_glass``) that reports back by signal.

New commands (the children, the signals to them) sit behind the ``break-glass-grants`` patch; the
stored histories never sent these updates, so they replay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pausegate.models.break_glass import (
        ApproveBreakGlassInput,
        BreakGlassWorkflowInput,
        EndBreakGlassInput,
        Grant,
        GrantClosed,
        GrantOpened,
        RequestBreakGlassInput,
    )
    from pausegate.models.runbook import Runbook
    from pausegate.models.seals import SealedMessage
    from pausegate.models.state import PauseState, Tuning
    from pausegate.models.updates import UpdateReceipt
    from pausegate.policy import break_glass as bg
    from workflows.break_glass import BreakGlassWorkflow

BREAK_GLASS_PATCH = "break-glass-grants"


class BreakGlassGrants:
    """The grants of one pause: the state they change is the pause's own (changed in place)."""

    def __init__(self, state: PauseState, runbook: Runbook, tuning: Tuning, *,
                 notify: Callable[[str, str], None]) -> None:
        self.state = state
        self.runbook = runbook
        self.tuning = tuning
        self.notify = notify

    # ------------------------------------------------------------------ changes (inside the update frame)

    def request(self, input: RequestBreakGlassInput) -> str:
        grant = bg.request_grant(self.state, self.runbook, input, workflow.now())
        if grant.emergency:
            # every approver hears of it at once, by role (the notification targets are the channels)
            for role in bg.approver_roles(self.runbook):
                self.notify("break_glass.emergency",
                            f"@{role}: emergency break-glass grant {grant.id} to {grant.holder} on {grant.dataset} "
                            f"({', '.join(t.table for t in grant.tables)}) until {grant.ends_at}: {grant.reason}")
            return f"grant {grant.id} started (emergency self-grant; approvers notified)"
        self.notify("break_glass.requested", f"{grant.holder} asks for break-glass access {grant.id} to "
                    f"{grant.dataset} for {grant.duration}: {grant.reason}")
        return f"grant {grant.id} requested; waiting for an approver"

    def approve(self, input: ApproveBreakGlassInput) -> str:
        grant = bg.approve_grant(self.state, self.runbook, input, workflow.now())
        return f"grant {grant.id} started until {grant.ends_at}"

    def end(self, input: EndBreakGlassInput) -> str:
        grant = bg.end_grant(self.state, input, workflow.now())
        return f"grant {grant.id} ending"

    # ------------------------------------------------------------------ commands

    async def start_pending(self) -> None:
        """Start the workflow of every grant that has started but has none yet."""
        if self.state.break_glass is None:
            return
        for grant in self.state.break_glass.grants:
            if grant.status == "opening" and not grant.started and workflow.patched(BREAK_GLASS_PATCH):
                assert grant.ends_at is not None
                await workflow.start_child_workflow(
                    BreakGlassWorkflow.run,
                    BreakGlassWorkflowInput(target=bg.target(self.state, self.runbook, grant), ends_at=grant.ends_at,
                                            pause_workflow_id=workflow.info().workflow_id,
                                            heartbeat_seconds=self.tuning.activity_heartbeat_seconds,
                                            urgent_task_queue=self.tuning.urgent_task_queue),
                    id=self.child_id(grant),
                    # the grant ends by itself even when the pause continues as new or closes
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
                grant.started = True
                grant.scram_verifier = None  # the grant's workflow holds it now: not the pause's state, nor its report

    async def signal_end(self, grant_id: str, by: str) -> None:
        grant = self.state.break_glass.grant(grant_id) if self.state.break_glass is not None else None
        if grant is None or not grant.started:
            return
        try:
            await workflow.get_external_workflow_handle(self.child_id(grant)).signal(BreakGlassWorkflow.end, by)
        except Exception as exc:  # the grant's workflow already finished: it ended anyway
            workflow.logger.warning("break-glass end not delivered: %s", type(exc).__name__)

    def child_id(self, grant: Grant) -> str:
        return f"{workflow.info().workflow_id}/break-glass/{grant.role}"

    # ------------------------------------------------------------------ reports from the grants

    def _started(self, grant_id: str) -> bool:
        # only a grant whose workflow this pause started can report: a report of any other is not taken
        grant = self.state.break_glass.grant(grant_id) if self.state.break_glass is not None else None
        return grant is not None and grant.started

    def opened(self, report: GrantOpened) -> None:
        if self._started(report.grant_id):
            bg.grant_opened(self.state, report.grant_id, report.logging, workflow.now())

    def closed(self, report: GrantClosed) -> None:
        if self._started(report.grant_id):
            bg.grant_closed(self.state, report, workflow.now())


class BreakGlassHandlers:
    """The pause workflow's break-glass messages, each through the pause's own update frame
    (``PauseWorkflow._apply`` / ``_validate``: applied once, only where sealed for, refusals written
    nowhere). A base of ``PauseWorkflow``: the SDK takes handlers from base classes too."""

    state: PauseState
    runbook: Runbook
    grants: BreakGlassGrants

    if TYPE_CHECKING:
        def _apply(self, input: SealedMessage, change: Callable[[], str]) -> UpdateReceipt: ...
        def _validate(self, input: SealedMessage, check: Callable[[], None]) -> None: ...
        def _already_applied(self) -> UpdateReceipt | None: ...
        def _settle_review(self) -> None: ...

    @workflow.update
    async def request_break_glass(self, input: RequestBreakGlassInput) -> UpdateReceipt:
        """Ask for read access during the pause; an emergency self-grant (where allowed) starts at once."""
        receipt = self._apply(input, lambda: self.grants.request(input))
        await self.grants.start_pending()
        return receipt

    @request_break_glass.validator
    def validate_request_break_glass(self, input: RequestBreakGlassInput) -> None:
        self._validate(input, lambda: bg.check_request(self.runbook, self.state, input))

    @workflow.update
    async def approve_break_glass(self, input: ApproveBreakGlassInput) -> UpdateReceipt:
        """An approver starts a requested grant: it ends by itself when its time is up."""
        receipt = self._apply(input, lambda: self.grants.approve(input))
        await self.grants.start_pending()
        return receipt

    @approve_break_glass.validator
    def validate_approve_break_glass(self, input: ApproveBreakGlassInput) -> None:
        self._validate(input, lambda: bg.check_approval(self.runbook, self.state, input))

    @workflow.update
    async def end_break_glass(self, input: EndBreakGlassInput) -> UpdateReceipt:
        """The holder returns a grant early, or the commander takes it back."""
        repeated = self._already_applied() is not None
        receipt = self._apply(input, lambda: self.grants.end(input))
        if not repeated:
            await self.grants.signal_end(input.grant_id, input.actor.id)
        return receipt

    @end_break_glass.validator
    def validate_end_break_glass(self, input: EndBreakGlassInput) -> None:
        self._validate(input, lambda: bg.check_end(self.runbook, self.state, input))

    @workflow.signal
    def break_glass_opened(self, report: GrantOpened) -> None:
        """A grant's workflow reports its role open, its statements logged."""
        self.grants.opened(report)

    @workflow.signal
    def break_glass_closed(self, report: GrantClosed) -> None:
        """A grant's workflow reports its end, verified by the database, and its sealed statements."""
        self.grants.closed(report)
        self._settle_review()
