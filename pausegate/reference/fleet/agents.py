"""The agents of one program, held in compact arrays so one process carries a million of them.

An agent is its position in the program: ``agent-00042`` is number 42, its employee follows from the
number, and its flags and counters are one slot in each array (about a dozen bytes an agent, where a
Python object per agent took over three hundred). Times are kept only for the agents that have one
(gone offline, sampled by telemetry). ``AgentRecord`` is a view of one slot that reads and writes
the arrays, so the fleet's rules read as they would over objects.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable, Iterator
from datetime import datetime

from pausegate.models.fleet import AgentState

ID_PREFIX = "agent-"

# queued: a halt or resume waiting for an offline agent
_NONE, _HALT, _RESUME = 0, 1, 2


def agent_id(n: int) -> str:
    return f"{ID_PREFIX}{n:05d}"


def employee_of(n: int, employees: int) -> str:
    """Agent n (1-based) belongs to employee_0001.. cycling, matching the example's login roles."""
    return f"employee_{(n - 1) % employees + 1:04d}"


class AgentTable:
    """Agents ``agent-00001`` .. ``agent-<size>`` of a program; a read-only mapping of id to ``AgentRecord``."""

    __slots__ = (
        "employees",
        "halted",
        "halts",
        "last_event_at",
        "online",
        "queued",
        "resumes",
        "size",
        "went_offline_at",
    )

    def __init__(self, size: int, employees: int) -> None:
        self.size = size
        self.employees = employees
        self.online = bytearray(b"\x01") * size
        self.halted = bytearray(size)  # the agent's own flag; the program switch halts it independently
        self.queued = bytearray(size)
        self.halts = array("I", bytes(4 * size))
        self.resumes = array("I", bytes(4 * size))
        self.went_offline_at: dict[int, datetime] = {}
        self.last_event_at: dict[int, datetime] = {}

    def index(self, aid: str) -> int | None:
        """The slot of ``aid``, or None when no agent of this program has that id."""
        digits = aid[len(ID_PREFIX):]
        if not aid.startswith(ID_PREFIX) or not digits.isdigit() or len(digits) > 9:
            return None
        n = int(digits)
        # only the canonical spelling names an agent (agent-7 is not agent-00007)
        if not 1 <= n <= self.size or agent_id(n) != aid:
            return None
        return n - 1

    def at(self, i: int) -> AgentRecord:
        return AgentRecord(self, i)

    # --- the mapping ---------------------------------------------------------------------

    def get(self, aid: str) -> AgentRecord | None:
        i = self.index(aid)
        return None if i is None else AgentRecord(self, i)

    def __getitem__(self, aid: str) -> AgentRecord:
        a = self.get(aid)
        if a is None:
            raise KeyError(aid)
        return a

    def __contains__(self, aid: object) -> bool:
        return isinstance(aid, str) and self.index(aid) is not None

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        return (agent_id(i + 1) for i in range(self.size))

    def values(self) -> Iterator[AgentRecord]:
        return (AgentRecord(self, i) for i in range(self.size))

    def records(self, indices: Iterable[int]) -> list[AgentRecord]:
        return [AgentRecord(self, i) for i in indices]

    def collecting_indices(self) -> list[int]:
        """Slots of agents that are online and not halted by their own flag."""
        both = _and_not(self.online, self.halted)
        out: list[int] = []
        i = both.find(1)
        while i != -1:
            out.append(i)
            i = both.find(1, i + 1)
        return out

    def slots_in(self, state: AgentState | None, *, switch_on: bool, start: int = 0) -> Iterator[int]:
        """Slots from ``start`` on of the agents in ``state`` (every agent when None), found in the arrays."""
        if state is None:
            yield from range(start, self.size)
            return
        flags: bytes | bytearray
        if state is AgentState.OFFLINE:
            flags, want = self.online, 0
        elif state is AgentState.HALTED:
            flags, want = (self.online, 1) if not switch_on else (_and(self.online, self.halted), 1)
        else:
            if not switch_on:
                return
            flags, want = _and_not(self.online, self.halted), 1
        i = flags.find(want, start)
        while i != -1:
            yield i
            i = flags.find(want, i + 1)

    def sample_collecting(self, rng: random.Random, k: int) -> list[int]:
        """Up to ``k`` distinct slots of collecting agents, at random: drawn directly while most agents
        collect (a tick costs the sample, not the fleet), else from a scan."""
        if self.size == 0 or k <= 0:
            return []
        picked: set[int] = set()
        for _ in range(4 * k):
            i = rng.randrange(self.size)
            if self.online[i] and not self.halted[i]:
                picked.add(i)
                if len(picked) == k:
                    return sorted(picked)
        candidates = self.collecting_indices()
        return sorted(rng.sample(candidates, min(k, len(candidates))))


def _and(online: bytearray, halted: bytearray) -> bytes:
    size = len(online)
    return (int.from_bytes(online, "little") & int.from_bytes(halted, "little")).to_bytes(size, "little")


def _and_not(online: bytearray, halted: bytearray) -> bytes:
    """online AND NOT halted, bytewise (each byte 0 or 1), through big integers: C speed."""
    size = len(online)
    a = int.from_bytes(online, "little")
    b = int.from_bytes(halted, "little")
    return (a & ~b & int.from_bytes(b"\x01" * size, "little")).to_bytes(size, "little")


class AgentRecord:
    """One agent: a view of its slot in the program's ``AgentTable``."""

    __slots__ = ("_i", "_t")

    def __init__(self, table: AgentTable, index: int) -> None:
        self._t = table
        self._i = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AgentRecord) and other._t is self._t and other._i == self._i

    def __hash__(self) -> int:
        return hash((id(self._t), self._i))

    @property
    def index(self) -> int:
        return self._i

    @property
    def id(self) -> str:
        return agent_id(self._i + 1)

    @property
    def employee(self) -> str:
        return employee_of(self._i + 1, self._t.employees)

    @property
    def online(self) -> bool:
        return bool(self._t.online[self._i])

    @online.setter
    def online(self, value: bool) -> None:
        self._t.online[self._i] = value

    @property
    def halted(self) -> bool:
        return bool(self._t.halted[self._i])

    @halted.setter
    def halted(self, value: bool) -> None:
        self._t.halted[self._i] = value

    @property
    def queued(self) -> bool | None:
        """A halt (True) or resume (False) waiting for an offline agent, else None."""
        q = self._t.queued[self._i]
        return None if q == _NONE else q == _HALT

    @queued.setter
    def queued(self, value: bool | None) -> None:
        self._t.queued[self._i] = _NONE if value is None else (_HALT if value else _RESUME)

    @property
    def halts(self) -> int:
        return self._t.halts[self._i]

    @halts.setter
    def halts(self, value: int) -> None:
        self._t.halts[self._i] = value

    @property
    def resumes(self) -> int:
        return self._t.resumes[self._i]

    @resumes.setter
    def resumes(self, value: int) -> None:
        self._t.resumes[self._i] = value

    @property
    def went_offline_at(self) -> datetime | None:
        return self._t.went_offline_at.get(self._i)

    @went_offline_at.setter
    def went_offline_at(self, value: datetime | None) -> None:
        _put(self._t.went_offline_at, self._i, value)

    @property
    def last_event_at(self) -> datetime | None:
        return self._t.last_event_at.get(self._i)

    @last_event_at.setter
    def last_event_at(self, value: datetime | None) -> None:
        _put(self._t.last_event_at, self._i, value)


def _put(times: dict[int, datetime], i: int, value: datetime | None) -> None:
    if value is None:
        times.pop(i, None)
    else:
        times[i] = value
