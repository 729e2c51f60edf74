"""Where a message to a pause was sealed for, and the rule that refuses one sent anywhere else.

The history codec binds every payload to a namespace and a workflow id (``pausegate.temporal.codec``),
but a program's pauses share one workflow id, and the SDK's serialization context names no update. So
each message people send a pause carries the rest of its address inside the sealed payload: the pause
(the first run of its chain, which continue-as-new keeps) and the update id it is sent under. Only a
client holding the history key can write it; the workflow compares it with where the message arrived.
A copied payload sent again under a new update id, or to the program's next pause, is refused.
"""

from __future__ import annotations

from pydantic import Field

from pausegate.models.base import Model

_ID = 1000  # Temporal's own limit on ids is lower; this only bounds what a sealed payload may name


class SealedFor(Model):
    """The address a client sealed a message for. A start names no pause and no update (neither exists yet)."""

    namespace: str = Field(max_length=_ID)
    workflow_id: str = Field(max_length=_ID)
    pause_chain: str | None = Field(default=None, max_length=_ID,
                                    description="The first run id of the pause an update is for.")
    update_id: str | None = Field(default=None, max_length=_ID)


class SealedMessage(Model):
    """A message that carries its address (set by the client that sends it, never by a request body)."""

    sealed_for: SealedFor | None = Field(default=None, description="None: sent before messages were sealed.")


def delivery_problem(sealed_for: SealedFor | None, arrived: SealedFor) -> str | None:
    """Why a message sealed for ``sealed_for`` does not belong where it ``arrived``, or None when it does."""
    if sealed_for is None:
        return "the message carries no address (a format from before messages were sealed, or a copy of one)"
    if (sealed_for.namespace, sealed_for.workflow_id) != (arrived.namespace, arrived.workflow_id):
        return "the message was sealed for another workflow"
    if sealed_for.pause_chain != arrived.pause_chain:
        return "the message was sealed for another pause of this program"
    if sealed_for.update_id != arrived.update_id:
        return "the message was sealed for another update (a copy sent again under a new update id)"
    return None
