"""Acting on a pause as the tests do: straight through Temporal, without the API in between.

A refusal is signalled into the pause's timeline at once (the API records it coalesced instead,
``pausegate.api.actions``), then raised.
"""

from __future__ import annotations

from temporalio.client import Client

from pausegate.errors import ActionRefused
from pausegate.models.updates import RefusalInput, UpdateReceipt
from pausegate.temporal.pauses import UPDATES, PauseAction, pause_handle, send_update
from workflows.pause import PauseWorkflow


async def act(client: Client, program: str, action: PauseAction, *, update_id: str | None = None) -> UpdateReceipt:
    """Send one update to a program's pause; a refusal is recorded in its timeline and raised."""
    try:
        return await send_update(client, program, action, update_id=update_id)
    except ActionRefused as exc:
        name = UPDATES[type(action)].__name__
        await pause_handle(client, program).signal(
            PauseWorkflow.record_refusal,
            RefusalInput(actor=action.actor.id, action=f"refused.{name}", reason=f"{exc.code}: {exc.reason}"),
        )
        raise
