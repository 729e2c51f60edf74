"""The fleet's state across restarts: an append-only journal of applied changes, replayed at start.

A journal line is written for each change as it is applied, before the request is answered,
so a confirmed halt is never forgotten by a restarted fleet. Replaying goes through the same
methods as live requests, with the clock pinned to each change's original time, which rebuilds
agents, switches, stored idempotency answers, counters and the audit trail alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.get_logger("pausegate.reference.fleet.state")


class JournaledProgram(Protocol):
    """What the journal needs of a program (``fleet.Program``): where its changes are written, and how
    a written change is applied again."""

    journal: Callable[[dict[str, Any]], None] | None

    def replay(self, change: dict[str, Any]) -> None: ...


class Journal:
    """The journal file of a fleet's programs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def attach(self, programs: Mapping[str, JournaledProgram]) -> None:
        """Replay what the file holds into ``programs`` (by name), then journal their further changes."""
        replayed = self.replay(programs)
        for name, program in programs.items():
            program.journal = self._writer(name)
        log.info("fleet.state_loaded", path=str(self.path), changes=replayed)

    def _writer(self, program: str) -> Callable[[dict[str, Any]], None]:
        def write(change: dict[str, Any]) -> None:
            line = json.dumps({"program": program, **change}, separators=(",", ":"))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

        return write

    def replay(self, programs: Mapping[str, JournaledProgram]) -> int:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return 0
        count = 0
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            try:
                change = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):
                    # A crash mid-append leaves a partial last line; that change was never answered.
                    log.warning("fleet.state_partial_line", path=str(self.path), line=n)
                    break
                raise
            program = programs.get(change["program"])
            if program is None:
                continue
            program.replay(change)
            count += 1
        return count
