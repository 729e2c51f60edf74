"""Telling people: webhook notifications."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.interfaces import Notifier
from pausegate.models.steps import NotifyInput


class NotifyActivities:
    """Activities over notifiers, chosen by connection name."""

    def __init__(self, notifiers: Callable[[str], Notifier]) -> None:
        self._notifiers = notifiers

    @activity.defn(name="notify")
    async def notify(self, input: NotifyInput) -> None:
        """Post one message; a retry may post it twice, which chat tolerates better than silence."""
        async with running():
            await self._notifiers(input.connection).send(
                input.text,
                {"pause": input.pause_id, "program": input.program, "event": input.event, "state": input.phase.value},
            )
