"""A drill's own steps: halting and resuming only the canary agents, restoring the canary's access to its
snapshot, asking whether a real pause is open, and filing the drill's report (labelled a drill).

Revoking and verifying the canary are the pause's own steps (``AccessActivities``) over the canary as a
dataset; what is here is what a pause does not do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from temporalio import activity

from activities.fleet import list_agents
from activities.heartbeat import running
from pausegate.connectors.interfaces import FleetConnector
from pausegate.connectors.postgres.canary_restore import restore_canary_on
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.evidence.interface import EvidenceStore
from pausegate.evidence.layout import catalog_key, report_key
from pausegate.models.drill import (
    DRILL_LABEL,
    CanaryAgents,
    CanaryRestored,
    DrillReportInput,
    HaltCanaryInput,
    RestoreCanaryInput,
)
from pausegate.models.evidence import EvidenceRef
from pausegate.models.fleet import AgentResultStatus, AgentState, BatchRequest


def canary_agents_key(drill_key: str) -> str:
    """Where a drill records the canary agents halted before it (beside its catalog snapshot)."""
    return f"{drill_key}/canary/agents-before"


class DrillActivities:
    """Activities of drills, over the fleets and databases named by connection."""

    def __init__(self, fleets: Callable[[str], FleetConnector], dsn: Callable[[str], str], store: EvidenceStore,
                 pause_open: Callable[[str], Awaitable[bool]]) -> None:
        self._pause_open = pause_open
        self._fleets = fleets
        self._dsn = dsn
        self._store = store

    @activity.defn(name="drill_pause_open")
    async def pause_open(self, program: str) -> bool:
        """Whether a real pause of the program is open now (a drill then stands aside)."""
        async with running():
            return await self._pause_open(program)

    @activity.defn(name="halt_canary")
    async def halt_canary(self, input: HaltCanaryInput) -> CanaryAgents:
        """Halt the canary agents one by one (the program's switch stays on: the rest of the fleet collects).
        The canary agents halted before the drill are recorded first, once (a retry reads the record), and
        left to their own halt: the restore resumes only what the drill halted."""
        async with running():
            fleet = self._fleets(input.connection)
            before = await self._halted_before(input, fleet, record=True)
            assert before is not None
            ids = [a for a in input.agent_ids if a not in before]
            result = await self._batch(input, ids, halt=True) if ids else CanaryAgents(confirmed=0)
            return result.model_copy(update={"confirmed": result.confirmed + len(before),
                                             "halted_before": sorted(before)})

    @activity.defn(name="resume_canary")
    async def resume_canary(self, input: HaltCanaryInput) -> CanaryAgents:
        """Resume the canary agents the drill halted and confirm through the fleet's listing that none of
        them is still halted (an offline one resumes when it returns, as it would have collected)."""
        async with running():
            fleet = self._fleets(input.connection)
            before = await self._halted_before(input, fleet, record=False)
            if before is None:  # the halt never got as far as its record: it halted nothing
                return CanaryAgents(confirmed=0)
            ids = [a for a in input.agent_ids if a not in before]
            if not ids:
                return CanaryAgents(confirmed=0, halted_before=sorted(before))
            await self._batch(input, ids, halt=False)
            halted = {a.id for a in await list_agents(fleet, input.program, state=AgentState.HALTED)}
            pending = sorted(set(ids) & halted)
            return CanaryAgents(confirmed=len(ids) - len(pending), pending_ids=pending, halted_before=sorted(before))

    async def _halted_before(self, input: HaltCanaryInput, fleet: FleetConnector, *, record: bool) -> set[str] | None:
        """The canary agents halted before the drill, as first recorded (None: not recorded, ``record`` off)."""
        key = canary_agents_key(input.drill_key)
        if await asyncio.to_thread(self._store.get, key) is not None:
            document = await asyncio.to_thread(self._store.read_json, key)
            return set(document["halted_before"])
        if not record:
            return None
        canary = set(input.agent_ids)
        halted = sorted(canary & {a.id for a in await list_agents(fleet, input.program, state=AgentState.HALTED)})
        await asyncio.to_thread(self._store.put_json, key, {"halted_before": halted})
        return set(halted)

    async def _batch(self, input: HaltCanaryInput, ids: list[str], *, halt: bool) -> CanaryAgents:
        fleet = self._fleets(input.connection)
        action = "halt" if halt else "resume"
        request = BatchRequest(agent_ids=ids, incident_id=input.incident_id,
                               idempotency_key=f"{input.incident_id}/canary-{action}/{input.round}/"
                                               f"{activity.info().attempt}")
        send = fleet.halt if halt else fleet.resume
        result = await send(input.program, request)
        missing = sorted(r.agent_id for r in result.results if r.status == AgentResultStatus.NOT_FOUND)
        if missing and halt:
            # A canary agent the fleet does not know: the runbook is out of date, which is what a drill finds.
            raise TargetRejectedError(f"the fleet knows no canary agent {', '.join(missing[:10])}")
        # resuming: an agent the fleet does not know was never halted, so there is nothing of it to restore
        pending = sorted(r.agent_id for r in result.results
                         if r.status not in (AgentResultStatus.CONFIRMED, AgentResultStatus.NOT_FOUND))
        return CanaryAgents(confirmed=len(ids) - len(pending) - len(missing), pending_ids=pending)

    @activity.defn(name="restore_canary")
    async def restore_canary(self, input: RestoreCanaryInput) -> CanaryRestored:
        """Restore the canary's access to the snapshot its revoke captured and compare, as sets. Without
        a reference (the revoke's answer was lost) the snapshot filed under the drill is used; without
        one, nothing was revoked (a revoke commits only once its snapshot is filed)."""
        async with running():
            key = catalog_key(input.drill_key, input.dataset.name)
            snapshot: Any
            if input.snapshot is not None:
                snapshot = await asyncio.to_thread(self._store.read_json, key, input.snapshot.sha256)
            elif await asyncio.to_thread(self._store.get, key) is not None:
                snapshot = await asyncio.to_thread(self._store.read_json, key)
            else:
                return CanaryRestored(statements=0, equal=True, compared=0)
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn(input.dataset.connection)) as conn:
                    return await restore_canary_on(conn, input.dataset, snapshot)
            except psycopg.OperationalError as exc:
                raise TargetUnavailableError(f"canary restore: database unavailable: {exc}") from exc

    @activity.defn(name="write_drill_report")
    async def write_drill_report(self, input: DrillReportInput) -> EvidenceRef:
        """File the drill's report, labelled a drill (once: a retry finds it filed)."""
        async with running():
            # a drill's evidence is filed like a pause's, under its own key (<program>/drill-<started>-<suffix>)
            key = report_key(input.drill_key)
            if (stored := await asyncio.to_thread(self._store.get, key)) is not None:
                return stored
            document = {"label": DRILL_LABEL, "drill": input.state.model_dump(mode="json")}
            return await asyncio.to_thread(self._store.put_json, key, document)
