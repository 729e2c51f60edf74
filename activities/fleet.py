"""Halting and resuming a program's agents through its fleet."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from functools import partial

from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.interfaces import FleetConnector
from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.models.conditions import CheckCollectionInput, SetCollectionInput
from pausegate.models.fleet import (
    Agent,
    AgentResultStatus,
    AgentState,
    BatchRequest,
    BatchResult,
    SwitchRequest,
)
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.steps import AgentsCheck, HaltAgentsInput, HaltAgentsResult, ResumeAgentsInput, ResumeAgentsResult

PAGE_SIZE = 5000
MAX_BATCH = 5000  # the contract's largest batch
TARGET_ANSWER_SECONDS = 0.25


async def _agent_ids(fleet: FleetConnector, program: str, *, state: AgentState | None = None) -> tuple[list[str], int]:
    """Ids of the program's agents (optionally those in a state) and their count as the fleet gives it."""
    ids: list[str] = []
    token: str | None = None
    total = 0
    while True:
        page = await fleet.list_agents(program, page_token=token, page_size=PAGE_SIZE, state=state)
        total = page.total
        ids.extend(a.id for a in page.agents)
        activity.heartbeat(f"listed {len(ids)}")
        token = page.next_page_token
        if not token:
            return ids, total


async def _not_halted(fleet: FleetConnector, program: str) -> tuple[list[str], int]:
    """Ids of the agents not halted (offline or collecting), filtered by the fleet, and the program's total.

    With the switch off every online agent is halted, so this lists only the offline ones: a fleet
    of a million pays for its stragglers, not for a million ids."""
    # at once: one round trip's wait, not three
    (offline, _), (collecting, _), everyone = await asyncio.gather(
        _agent_ids(fleet, program, state=AgentState.OFFLINE),
        _agent_ids(fleet, program, state=AgentState.COLLECTING),
        fleet.list_agents(program, page_size=1),
    )
    return offline + collecting, everyone.total


async def in_batches(
    send: Callable[[BatchRequest], Awaitable[BatchResult]],
    ids: list[str],
    *,
    incident_id: str,
    action: str,
    batch_size: int,
    concurrency: int,
) -> BatchResult:
    """Send ids in bulk batches, at most ``concurrency`` at once, heartbeating each batch.

    ``batch_size`` is where sizing starts: each answer's time sizes the next batch (towards
    ``TARGET_ANSWER_SECONDS`` a request, at most doubling or halving a step, within the contract's
    ``MAX_BATCH``), so a quick fleet gets few large requests and a slow one is not sent more than it
    answers in time."""
    done = 0
    cursor = 0
    size = max(1, min(batch_size, MAX_BATCH))
    results: list[BatchResult] = []

    async def lane() -> None:
        nonlocal done, cursor, size
        while cursor < len(ids):
            batch = ids[cursor : cursor + size]
            cursor += len(batch)
            # Keyed by what the batch is, not by attempt: a retried batch is the same request.
            key = f"{incident_id}/{action}/" + hashlib.sha256("\n".join(batch).encode()).hexdigest()[:32]
            started = time.monotonic()
            results.append(await send(BatchRequest(agent_ids=batch, incident_id=incident_id, idempotency_key=key)))
            took = max(time.monotonic() - started, 1e-3)
            size = max(1, min(MAX_BATCH, 2 * size, max(size // 2, round(len(batch) * TARGET_ANSWER_SECONDS / took))))
            done += len(batch)
            activity.heartbeat(f"{action} {done}/{len(ids)}")

    await asyncio.gather(*(lane() for _ in range(max(1, concurrency))))
    return BatchResult(results=[r for res in results for r in res.results])


class FleetActivities:
    """Activities over agent fleets, chosen by connection name."""

    def __init__(self, fleets: Callable[[str], FleetConnector]) -> None:
        self._fleets = fleets

    @activity.defn(name="halt_agents")
    async def halt_agents(self, input: HaltAgentsInput) -> HaltAgentsResult:
        """Switch the program off, then halt every agent not yet halted; count only what the fleet confirms."""
        async with running():
            fleet = self._fleets(input.connection)
            switch = await fleet.set_switch(
                input.program, SwitchRequest(enabled=False, incident_id=input.incident_id, reason=input.reason)
            )
            activity.heartbeat("switch off")
            pending, total = await _not_halted(fleet, input.program)
            result = await in_batches(partial(fleet.halt, input.program), pending,
                                       incident_id=input.incident_id, action="halt",
                                       batch_size=input.batch_size, concurrency=input.concurrency)
            confirmed = sum(1 for r in result.results if r.status == AgentResultStatus.CONFIRMED)
            not_found = sum(1 for r in result.results if r.status == AgentResultStatus.NOT_FOUND)
            waived = set(input.exclude_ids)
            # An agent the fleet did not answer for is not halted, whatever the rest of the batch says.
            answered = {r.agent_id for r in result.results}
            unconfirmed = sorted(
                {r.agent_id for r in result.results if r.status == AgentResultStatus.PENDING}
                | (set(pending) - answered)
                - waived
            )
            activity.logger.info("halt: %d confirmed, %d unconfirmed of %d", confirmed, len(unconfirmed), total)
            return HaltAgentsResult(
                switch_off=not switch.enabled,
                total=total,
                halted=total - len(pending) + confirmed,
                unconfirmed=len(unconfirmed),
                unconfirmed_ids=unconfirmed[:MAX_LISTED_IDS],
                not_found=not_found,
                switch_off_at=None if switch.enabled else switch.changed_at,
            )

    @activity.defn(name="check_agents_silent")
    async def check_agents_silent(self, input: HaltAgentsInput) -> AgentsCheck:
        """Whether the switch is still off and no agent is collecting."""
        async with running():
            fleet = self._fleets(input.connection)
            switch = await fleet.get_switch(input.program)
            page = await fleet.list_agents(input.program, page_size=MAX_LISTED_IDS, state=AgentState.COLLECTING)
            # A filtered listing's total counts the agents in that state.
            return AgentsCheck(
                switch_off=not switch.enabled,
                collecting=page.total,
                collecting_ids=[a.id for a in page.agents][:MAX_LISTED_IDS],
            )

    @activity.defn(name="resume_agents")
    async def resume_agents(self, input: ResumeAgentsInput) -> ResumeAgentsResult:
        """Switch the program on and resume the plan's agents (none: the switch stays off)."""
        async with running():
            return await resume_program(self._fleets(input.connection), input)

    @activity.defn(name="set_collection")
    async def set_collection(self, input: SetCollectionInput) -> CollectionProfile:
        """Set the program's collection profile (online agents run it at once; each reports it)."""
        async with running():
            request = CollectionRequest(data_types=input.data_types, incident_id=input.incident_id,
                                        reason="resume plan approved")
            return await self._fleets(input.connection).set_collection(input.program, request)

    @activity.defn(name="check_collection")
    async def check_collection(self, input: CheckCollectionInput) -> list[str]:
        """Why the fleet could not run a plan's profile (data types it does not know); empty when it could."""
        async with running():
            profile = await self._fleets(input.connection).get_collection(input.program)
            unknown = sorted(set(input.data_types) - set(profile.available))
            if not unknown:
                return []
            return [f"collection: the fleet's agents cannot capture {', '.join(unknown)}; "
                    f"they capture {', '.join(profile.available)}"]


async def resume_program(fleet: FleetConnector, input: ResumeAgentsInput,
                         keep: Callable[[Agent], bool] | None = None) -> ResumeAgentsResult:
    """Switch the program on and resume the selected halted agents; ``keep`` narrows who is resumed
    (agents it refuses stay halted: their own halt outlives the switch)."""
    if input.selection.mode == "none":
        return ResumeAgentsResult(switch_on=False, resumed=0, unconfirmed=0, unconfirmed_ids=[])
    switch = await fleet.set_switch(
        input.program,
        SwitchRequest(enabled=True, incident_id=input.incident_id, reason="resume plan approved"),
    )
    if input.selection.mode == "listed" and keep is None:
        ids = list(input.selection.agent_ids)
    else:
        listed = set(input.selection.agent_ids) if input.selection.mode == "listed" else None
        ids = [a.id for a in await list_agents(fleet, input.program, state=AgentState.HALTED)
               if (listed is None or a.id in listed) and (keep is None or keep(a))]
    result = await in_batches(partial(fleet.resume, input.program), ids,
                               incident_id=input.incident_id, action="resume",
                               batch_size=input.batch_size, concurrency=input.concurrency) if ids \
        else BatchResult(results=[])
    confirmed = sum(1 for r in result.results if r.status == AgentResultStatus.CONFIRMED)
    answered = {r.agent_id for r in result.results}
    pending = sorted(
        {r.agent_id for r in result.results if r.status != AgentResultStatus.CONFIRMED} | (set(ids) - answered)
    )
    # With the switch back on, agents halted only by the switch collect again without a call of their
    # own: the fleet's count of collecting agents is the resume's outcome.
    collecting = await fleet.list_agents(input.program, page_size=1, state=AgentState.COLLECTING)
    return ResumeAgentsResult(switch_on=switch.enabled, resumed=confirmed, unconfirmed=len(pending),
                              unconfirmed_ids=pending[:MAX_LISTED_IDS], collecting=collecting.total)


async def list_agents(fleet: FleetConnector, program: str, *, state: AgentState | None = None) -> list[Agent]:
    """Every agent of the program (optionally in one state), page by page."""
    agents: list[Agent] = []
    token: str | None = None
    while True:
        page = await fleet.list_agents(program, page_token=token, page_size=PAGE_SIZE, state=state)
        agents.extend(page.agents)
        activity.heartbeat(f"listed {len(agents)}")
        token = page.next_page_token
        if not token:
            return agents
