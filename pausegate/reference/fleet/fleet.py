"""The fleet's state: programs, their agents, the switch, batches and their effects.

Everything here is synchronous and runs on the event loop, so each request's changes are
atomic with respect to every other request and to the telemetry collector. The only
awaiting is ``Program.settle``: a halt is not reported confirmed while a telemetry write
that includes a just-halted agent may still commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.models.fleet import (
    Agent,
    AgentPage,
    AgentResult,
    AgentResultStatus,
    AgentState,
    BatchRequest,
    BatchResult,
    SwitchRequest,
    SwitchState,
)
from pausegate.reference.fleet.agents import AgentRecord, AgentTable
from pausegate.reference.fleet.audit import AuditLog
from pausegate.reference.fleet.collection import Collection
from pausegate.reference.fleet.settings import FleetSettings
from pausegate.reference.fleet.state import Journal

log = structlog.get_logger("pausegate.reference.fleet")

# A bounded record of answered batches: enough for any realistic retry horizon, without
# letting a long-running fleet grow without limit.
IDEMPOTENCY_RECORDS = 100_000


class ProgramNotFoundError(LookupError):
    """No such program in this fleet."""


class IdempotencyConflictError(ValueError):
    """The idempotency key was already used for a different request."""


class SwitchDisabledError(RuntimeError):
    """Agents cannot resume while the program switch is off."""


class SettleTimeoutError(TimeoutError):
    """An in-flight telemetry write did not finish in time, so a halt cannot be confirmed yet."""


class BadPageTokenError(ValueError):
    """The page token was not issued by this fleet."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Switch:
    enabled: bool = True
    incident_id: str | None = None
    reason: str = ""
    changed_at: datetime | None = None


@dataclass(slots=True)
class ProgramCounters:
    """Counters read through ``/admin`` to prove what the fleet did (and did not do)."""

    switch_changes: int = 0
    batches_applied: int = 0
    batches_replayed: int = 0
    ticks: int = 0
    ticks_written: int = 0
    ticks_discarded: int = 0  # rolled back because an agent was halted while the write was in flight
    rows_written: int = 0
    failed_writes: int = 0


@dataclass(slots=True)
class InFlightWrite:
    """A telemetry write that has sampled these agents and has not yet committed or rolled back."""

    agent_ids: frozenset[str]
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _fingerprint(op: str, request: BatchRequest) -> str:
    h = hashlib.sha256(f"{op}\0{request.incident_id}\0".encode())
    for aid in request.agent_ids:
        h.update(aid.encode())
        h.update(b"\0")
    return h.hexdigest()


class Program:
    """A data-collection program and its agents."""

    def __init__(self, name: str, agents: AgentTable, *, settle_timeout: float = 10.0) -> None:
        self.name = name
        self.agents = agents
        self.switch = Switch()
        self.collection = Collection()
        self.audit = AuditLog()
        self.counters = ProgramCounters()
        self.in_flight: InFlightWrite | None = None
        self.settle_timeout = settle_timeout
        self.clock: Callable[[], datetime] = utcnow
        # Receives every applied change (see state.py), so the fleet can be rebuilt after a restart.
        self.journal: Callable[[dict[str, Any]], None] | None = None
        self._answers: OrderedDict[tuple[str, str], tuple[str, BatchResult]] = OrderedDict()
        # Kept in step with every change so totals never need a scan of the whole fleet.
        self._offline = len(agents) - sum(agents.online)
        self._online_halted = sum(o & h for o, h in zip(agents.online, agents.halted, strict=True)) \
            if any(agents.halted) else 0
        self._log = log.bind(program=name)

    # --- reading -------------------------------------------------------------------------

    def state_of(self, a: AgentRecord) -> AgentState:
        if not a.online:
            return AgentState.OFFLINE
        if a.halted or not self.switch.enabled:
            return AgentState.HALTED
        return AgentState.COLLECTING

    def count(self, state: AgentState | None = None) -> int:
        online = len(self.agents) - self._offline
        halted = online if not self.switch.enabled else self._online_halted
        if state is None:
            return len(self.agents)
        return {
            AgentState.OFFLINE: self._offline,
            AgentState.HALTED: halted,
            AgentState.COLLECTING: online - halted,
        }[state]

    def view(self, a: AgentRecord, now: datetime) -> Agent:
        # Online agents poll continuously, so "last seen" for them is now.
        return Agent(
            id=a.id,
            state=self.state_of(a),
            last_seen=now if a.online else a.went_offline_at,
            last_event_at=a.last_event_at,
            employee=a.employee,
            data_types=self.collection.reported(a.id),
        )

    def list_agents(self, *, page_token: str | None, page_size: int, state: AgentState | None) -> AgentPage:
        start = self._decode_token(page_token)
        now = utcnow()
        page: list[Agent] = []
        next_token: str | None = None
        if state is not None and self.count(state) == 0:
            # nothing to find: no scan of the whole fleet
            return AgentPage(agents=[], next_page_token=None, total=0)
        for i in self.agents.slots_in(state, switch_on=self.switch.enabled, start=start):
            a = self.agents.at(i)
            if len(page) == page_size:
                # Only hand out a token when another match exists, so the last page says so.
                next_token = str(i)
                break
            page.append(self.view(a, now))
        return AgentPage(agents=page, next_page_token=next_token, total=self.count(state))

    def _decode_token(self, token: str | None) -> int:
        if token is None:
            return 0
        if not token.isdigit() or len(token) > 9 or int(token) > len(self.agents):
            raise BadPageTokenError(f"page token {token!r} was not issued by this fleet")
        return int(token)

    def switch_state(self) -> SwitchState:
        s = self.switch
        return SwitchState(
            program=self.name,
            enabled=s.enabled,
            incident_id=s.incident_id,
            changed_at=s.changed_at,
            reason=s.reason,
        )

    def collecting(self) -> list[AgentRecord]:
        if not self.switch.enabled:
            return []
        return self.agents.records(self.agents.collecting_indices())

    def sample_collecting(self, rng: random.Random, k: int) -> list[AgentRecord]:
        """Up to ``k`` collecting agents at random (telemetry samples them; no scan of the fleet)."""
        if not self.switch.enabled:
            return []
        return self.agents.records(self.agents.sample_collecting(rng, k))

    def all_collecting(self, ids: Iterable[str]) -> bool:
        return self.switch.enabled and all((a := self.agents[i]).online and not a.halted for i in ids)

    # --- changing ------------------------------------------------------------------------

    def set_switch(self, request: SwitchRequest, *, actor: str) -> SwitchState:
        """Set the switch; setting it to the value it already has changes nothing (a retry is safe)."""
        if request.enabled != self.switch.enabled:
            now = self.clock()
            self.switch = Switch(
                enabled=request.enabled,
                incident_id=request.incident_id,
                reason=request.reason,
                changed_at=now,
            )
            self.counters.switch_changes += 1
            self._record(now, {"op": "switch", "actor": actor, "request": request.model_dump(mode="json")})
            action = "switch.enable" if request.enabled else "switch.disable"
            detail = f"incident={request.incident_id} reason={request.reason}"
            self.audit.append(actor, action, None, detail, at=now)
            self._log.info(action, incident_id=request.incident_id)
        return self.switch_state()

    def halt(self, request: BatchRequest, *, actor: str) -> BatchResult:
        return self._batch("halt", request, actor)

    def resume(self, request: BatchRequest, *, actor: str) -> BatchResult:
        return self._batch("resume", request, actor)

    def _batch(self, op: str, request: BatchRequest, actor: str) -> BatchResult:
        key = (op, request.idempotency_key)
        fingerprint = _fingerprint(op, request)
        answered = self._answers.get(key)
        if answered is not None:
            if answered[0] != fingerprint:
                raise IdempotencyConflictError(
                    f"idempotency key {request.idempotency_key!r} was already used "
                    f"for a different {op} request"
                )
            self.counters.batches_replayed += 1
            return answered[1].model_copy(update={"replayed": True})
        if op == "resume" and not self.switch.enabled:
            raise SwitchDisabledError(
                f"program {self.name!r} switch is disabled (incident {self.switch.incident_id}); "
                "enable the switch before resuming agents"
            )
        halt = op == "halt"
        # One time for the whole batch, so a replayed journal reproduces the audit trail exactly.
        now = self.clock()
        incident = f"incident={request.incident_id}"
        results: list[AgentResult] = []
        confirmed = pending = missing = 0
        for aid in request.agent_ids:
            a = self.agents.get(aid)
            if a is None:
                results.append(AgentResult(agent_id=aid, status=AgentResultStatus.NOT_FOUND))
                missing += 1
            elif a.online:
                changed = self._apply(a, halt=halt, actor=actor, detail=incident, at=now)
                results.append(AgentResult(agent_id=aid, status=AgentResultStatus.CONFIRMED,
                                           state=self.state_of(a), changed=changed))
                confirmed += 1
            else:
                # Delivered when the agent returns; until then nobody can confirm it.
                if a.queued is not halt:
                    a.queued = halt
                    self.audit.append(actor, f"agent.{op}_queued", aid, incident, at=now)
                results.append(
                    AgentResult(agent_id=aid, status=AgentResultStatus.PENDING, state=AgentState.OFFLINE)
                )
                pending += 1
        result = BatchResult(results=results)
        self._answers[key] = (fingerprint, result)
        if len(self._answers) > IDEMPOTENCY_RECORDS:
            self._answers.popitem(last=False)
        self.counters.batches_applied += 1
        self._record(now, {"op": op, "actor": actor, "request": request.model_dump(mode="json")})
        self.audit.append(
            actor,
            f"batch.{op}",
            None,
            f"incident={request.incident_id} key={request.idempotency_key} "
            f"confirmed={confirmed} pending={pending} not_found={missing}",
            at=now,
        )
        self._log.info(
            f"batch.{op}",
            incident_id=request.incident_id,
            confirmed=confirmed,
            pending=pending,
            not_found=missing,
        )
        return result

    def _apply(self, a: AgentRecord, *, halt: bool, actor: str, detail: str, at: datetime) -> bool:
        """The agent applies a halt or resume; only a change of its flag counts as an effect (True)."""
        a.queued = None
        if a.halted == halt:
            return False
        a.halted = halt
        if halt:
            a.halts += 1
            self._online_halted += 1
        else:
            a.resumes += 1
            self._online_halted -= 1
        self.audit.append(actor, "agent.halt" if halt else "agent.resume", a.id, detail, at=at)
        return True

    def set_online(self, ids: Iterable[str], online: bool, *, actor: str) -> list[Agent]:
        """Take agents offline or bring them back; a returning agent reads its queued command and
        the program switch, and stops itself if the switch is off."""
        now = self.clock()
        out: list[Agent] = []
        changed: list[str] = []
        for aid in ids:
            a = self.agents.get(aid)
            if a is None:
                raise KeyError(aid)
            if a.online != online:
                changed.append(aid)
                if online:
                    a.online = True
                    self._offline -= 1
                    self._online_halted += a.halted
                    self.audit.append(actor, "agent.online", aid, "", at=now)
                    self.collection.returned(aid)
                    if a.queued is not None:
                        queued = "queued command applied on return"
                        self._apply(a, halt=a.queued, actor=aid, detail=queued, at=now)
                    if not self.switch.enabled:
                        self.audit.append(
                            aid,
                            "agent.switch_halt",
                            aid,
                            f"switch disabled incident={self.switch.incident_id}",
                            at=now,
                        )
                else:
                    a.online = False
                    a.went_offline_at = now
                    self._offline += 1
                    self._online_halted -= a.halted
                    self.audit.append(actor, "agent.offline", aid, "", at=now)
            out.append(self.view(a, now))
        if changed:
            self._record(now, {"op": "online" if online else "offline", "actor": actor, "ids": changed})
        return out

    def set_collection(self, request: CollectionRequest, *, actor: str) -> CollectionProfile:
        """Set the program's collection profile, journaled and audited like a switch change."""
        now = self.clock()
        offline = (a for a in self.agents.values() if not a.online)
        if self.collection.change(request, offline, now):
            self._record(now, {"op": "collection", "actor": actor, "request": request.model_dump(mode="json")})
            detail = f"incident={request.incident_id} data_types={','.join(request.data_types)} reason={request.reason}"
            self.audit.append(actor, "collection.set", None, detail, at=now)
        return self.collection.profile(self.name)

    def replay(self, change: dict[str, Any]) -> None:
        """Apply a journaled change again, through the same methods as live requests, with the clock
        pinned to the change's original time (see state.py)."""
        at = datetime.fromisoformat(change["at"])
        live = self.clock
        self.clock = lambda: at
        try:
            op, actor = change["op"], change["actor"]
            if op == "switch":
                self.set_switch(SwitchRequest.model_validate(change["request"]), actor=actor)
            elif op in ("halt", "resume"):
                request = BatchRequest.model_validate(change["request"])
                (self.halt if op == "halt" else self.resume)(request, actor=actor)
            elif op == "collection":
                self.set_collection(CollectionRequest.model_validate(change["request"]), actor=actor)
            elif op in ("online", "offline"):
                known = [i for i in change["ids"] if i in self.agents]
                self.set_online(known, op == "online", actor=actor)
            else:
                raise ValueError(f"unknown change {op!r} in the fleet's state journal")
        finally:
            self.clock = live

    def _record(self, at: datetime, change: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal({"at": at.isoformat(), **change})

    async def settle(self, ids: Iterable[str] | None = None) -> None:
        """Wait until no telemetry write that sampled any of ``ids`` (any agent if None) can still commit."""
        w = self.in_flight
        if w is None or w.done.is_set():
            return
        if ids is not None and w.agent_ids.isdisjoint(ids):
            return
        try:
            await asyncio.wait_for(w.done.wait(), self.settle_timeout)
        except TimeoutError:
            raise SettleTimeoutError("a telemetry write is still in flight; retry the request") from None


class FleetService:
    """All programs of the fleet."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.programs = {name: self._build(name) for name in settings.programs}
        if settings.state_file is not None:
            Journal(settings.state_file).attach(self.programs)

    def _build(self, name: str) -> Program:
        s = self.settings
        agents = AgentTable(s.agents, s.employees)
        offline = {i for i in map(agents.index, s.offline_agents) if i is not None}
        if s.offline_fraction:
            rng = random.Random(f"{s.seed}/{name}")
            offline.update(rng.sample(range(s.agents), round(s.agents * s.offline_fraction)))
        started = utcnow()
        for i in offline:
            a = agents.at(i)
            a.online = False
            a.went_offline_at = started
        return Program(name, agents, settle_timeout=s.settle_timeout_seconds)

    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise ProgramNotFoundError(f"no program {name!r} in this fleet") from None
