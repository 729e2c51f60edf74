"""Data actions a resume plan takes on collected data: checked at proposal, applied once, verified."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from temporalio import activity

from activities.heartbeat import running
from pausegate.models.data_actions import (
    ApplyDataActionInput,
    CheckDataActionsInput,
    DataActionResult,
    DataActionsCheck,
    VerifyDataActionsInput,
)

if TYPE_CHECKING:  # the connector is built by the registry, on a resume plan's first data action
    from pausegate.connectors.postgres.data_actions import PostgresDataActions


class DataActionActivities:
    """Activities over a dataset's data, chosen by the dataset's connection name."""

    def __init__(self, data_actions: Callable[[str], PostgresDataActions]) -> None:
        self._data_actions = data_actions

    @activity.defn(name="apply_data_action")
    async def apply_data_action(self, input: ApplyDataActionInput) -> DataActionResult:
        """Apply one action exactly once for the pause (a retry returns the first application's count)."""
        async with running() as progress:
            progress.report("applying", input.index)
            connector = self._data_actions(input.dataset.connection)
            return await connector.apply(input.pause_key, input.dataset, input.index, input.action)

    @activity.defn(name="verify_data_actions")
    async def verify_data_actions(self, input: VerifyDataActionsInput) -> DataActionsCheck:
        """Whether each action of the dataset was applied for the pause and its effect holds in the database."""
        async with running():
            connector = self._data_actions(input.dataset.connection)
            return await connector.verify(input.pause_key, input.dataset, list(input.actions))

    @activity.defn(name="check_data_actions")
    async def check_data_actions(self, input: CheckDataActionsInput) -> list[str]:
        """Why the actions could not be applied to the dataset now (empty when they could)."""
        async with running():
            connector = self._data_actions(input.dataset.connection)
            return await connector.check(input.dataset, list(input.actions))
