"""Reading a pause's record from Temporal, for checking its evidence against it (``pausegate evidence``).

A pause's state lives in its workflow (``pause/<digest>``, ``pausegate.temporal.ids``): an open pause answers a query; a
closed one returned its final state as the workflow's result, which Temporal keeps without a
worker having to replay anything. Earlier pauses of the same program are earlier runs of the
same workflow id, found through Temporal's visibility listing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from pausegate.config import Settings
from pausegate.errors import PauseNotFound
from pausegate.models.runbook import SLUG
from pausegate.models.state import PauseState
from pausegate.temporal.client import connect
from pausegate.temporal.ids import pause_id
from pausegate.temporal.pauses import read_status
from workflows.pause import PauseWorkflow

CONNECT_TIMEOUT_SECONDS = 10.0
RPC_TIMEOUT = timedelta(seconds=15)
_SLUG = re.compile(SLUG)


@dataclass(frozen=True)
class Record:
    """A pause's state as Temporal holds it, and which run it came from."""

    state: PauseState
    workflow_id: str
    run_id: str

    def describe(self) -> str:
        return (
            f"record of pause {self.state.evidence_key} (incident {self.state.incident_id}, "
            f"workflow {self.workflow_id} run {self.run_id})"
        )


CONNECTED: list[bool] = []
"""Non-empty once this process made a client here (``pausegate.cli.main.main`` reads it at exit)."""


async def connect_briefly(settings: Settings) -> Client:
    """A Temporal client, or an exception within ``CONNECT_TIMEOUT_SECONDS`` (an address that
    drops packets must not hang a verification)."""
    CONNECTED.append(True)
    return await asyncio.wait_for(connect(settings.temporal, settings.encryption), timeout=CONNECT_TIMEOUT_SECONDS)


async def _state_of(client: Client, workflow_id: str, run_id: str, status: WorkflowExecutionStatus | None) -> (
    PauseState | None
):
    handle = client.get_workflow_handle_for(PauseWorkflow.run, workflow_id, run_id=run_id)
    if status == WorkflowExecutionStatus.COMPLETED:
        # the final state is the run's result: no worker needs to replay the closed run
        state: PauseState = await handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
        return state
    if status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
        return None  # its state was carried into the next run, which is listed too
    try:
        queried: PauseState = await handle.query(PauseWorkflow.status, rpc_timeout=RPC_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        return None  # failed or terminated with no worker to answer: it recorded no final state
    return queried


async def find_record(
    client: Client, program: str, *, incident_id: str | None = None, evidence_key: str | None = None
) -> Record:
    """The record of ``program``'s latest pause, or of the one with ``incident_id`` / ``evidence_key``
    (an earlier, closed pause); ``PauseNotFound`` if there is none."""
    if not _SLUG.match(program):
        raise PauseNotFound(f"no pause for program {program[:80]!r}: not a program id")
    workflow_id = pause_id(client, program)

    def wanted(state: PauseState) -> bool:
        return (incident_id is None or state.incident_id == incident_id) and (
            evidence_key is None or state.evidence_key == evidence_key
        )

    try:
        latest = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PauseNotFound(f"no pause for program {program!r}") from None
        raise
    if latest.status == WorkflowExecutionStatus.RUNNING:
        state: PauseState | None = await read_status(client, program)
    else:
        state = await _state_of(client, workflow_id, latest.run_id, latest.status)
    if state is not None and wanted(state):
        return Record(state, workflow_id, latest.run_id)
    if incident_id is None and evidence_key is None:
        raise PauseNotFound(f"the latest pause of {program!r} (run {latest.run_id}) recorded no state to read")
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"', rpc_timeout=RPC_TIMEOUT):
        if execution.run_id == latest.run_id:
            continue
        state = await _state_of(client, workflow_id, execution.run_id, execution.status)
        if state is not None and wanted(state):
            return Record(state, workflow_id, execution.run_id)
    which = f"incident {incident_id!r}" if incident_id else f"evidence {evidence_key!r}"
    raise PauseNotFound(f"no pause of program {program!r} with {which}")


def pause_key_of(key: str) -> tuple[str, str] | None:
    """(program, pause evidence key) of an evidence key ``<program>/<started>-<suffix>/...``."""
    parts = key.split("/")
    if len(parts) < 3 or not _SLUG.match(parts[0]):
        return None
    return parts[0], f"{parts[0]}/{parts[1]}"
