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
from pausegate.errors import TargetUnavailableError
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

        The fleet says which agents this halt changed: those it did not were halted before the drill and
        are left to their own halt by the restore. The key is the drill's and the round's, not the
        attempt's, so a retry after a lost answer gets the first answer replayed, with what it changed."""
        async with running():
            result = await self._fleets(input.connection).halt(input.program, BatchRequest(
                agent_ids=list(input.agent_ids), incident_id=input.incident_id,
                idempotency_key=f"{input.incident_id}/canary-halt/{input.round}"))

            def ids(status: AgentResultStatus) -> list[str]:
                return sorted(r.agent_id for r in result.results if r.status == status)

            confirmed = [r for r in result.results if r.status == AgentResultStatus.CONFIRMED]
            return CanaryAgents(
                confirmed=len(confirmed),
                pending_ids=ids(AgentResultStatus.PENDING),
                not_found=ids(AgentResultStatus.NOT_FOUND),
                halted_before=sorted(r.agent_id for r in confirmed if r.changed is False),
                unknown_before=sum(1 for r in confirmed if r.changed is None),
            )

    @activity.defn(name="resume_canary")
    async def resume_canary(self, input: HaltCanaryInput) -> CanaryAgents:
        """Resume the canary agents the drill halted (``agent_ids``) and confirm through the fleet's listing
        that none of them is still halted (an offline one resumes when it returns, as it would have
        collected)."""
        async with running():
            fleet = self._fleets(input.connection)
            result = await fleet.resume(input.program, BatchRequest(
                agent_ids=list(input.agent_ids), incident_id=input.incident_id,
                idempotency_key=f"{input.incident_id}/canary-resume/{input.round}/{activity.info().attempt}"))
            # an agent the fleet does not know was never halted: there is nothing of it to restore
            known = [r.agent_id for r in result.results if r.status != AgentResultStatus.NOT_FOUND]
            halted = {a.id for a in await list_agents(fleet, input.program, state=AgentState.HALTED)}
            pending = sorted(set(known) & halted)
            return CanaryAgents(confirmed=len(known) - len(pending), pending_ids=pending)

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
            # imported here: only a drill restores a canary, and a worker should not load it to start polling
            from pausegate.connectors.postgres.canary_restore import restore_canary_on

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
