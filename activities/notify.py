"""Telling people: webhook notifications."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.interfaces import Notifier
from pausegate.models.phase import Phase
from pausegate.models.steps import NotifyInput


class NotifyActivities:
    """Activities over notifiers, chosen by connection name."""

    def __init__(self, notifiers: Callable[[str], Notifier], *, console: str | None = None) -> None:
        self._notifiers = notifiers
        self._console = console

    @activity.defn(name="notify")
    async def notify(self, input: NotifyInput) -> None:
        """Post one message; a retry may post it twice, which chat tolerates better than silence. A pending
        sign-off links to the console's sign-off page: approving is done there (or with the CLI), with
        the approver's own key; nothing in chat counts toward a quorum."""
        async with running():
            text = input.text
            if self._console and input.event == "state.changed" and input.phase == Phase.AWAITING_APPROVAL:
                text += f"\nSign off: {self._console.rstrip('/')}/console/pauses/{quote(input.program, safe='')}/plan"
            await self._notifiers(input.connection).send(
                text,
                {"pause": input.pause_id, "program": input.program, "event": input.event, "state": input.phase.value},
            )
