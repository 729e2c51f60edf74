"""The fleet's state across restarts: an append-only journal of applied changes, replayed at start.

A journal line is written for each change as it is applied, before the request is answered,
so a confirmed halt is never forgotten by a restarted fleet. Replaying goes through the same
methods as live requests, with the clock pinned to each change's original time, which rebuilds
agents, switches, stored idempotency answers, counters and the audit trail alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pausegate.models.collection import CollectionRequest
from pausegate.models.fleet import BatchRequest, SwitchRequest
from pausegate.reference.fleet.collection import set_profile

if TYPE_CHECKING:
    from pausegate.reference.fleet.fleet import FleetService, Program

log = structlog.get_logger("pausegate.reference.fleet.state")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def attach(self, service: FleetService) -> None:
        """Replay what the file holds into ``service``, then journal its programs' further changes."""
        replayed = self.replay(service)
        for program in service.programs.values():
            program.journal = self._writer(program.name)
        log.info("fleet.state_loaded", path=str(self.path), changes=replayed)

    def _writer(self, program: str) -> Callable[[dict[str, Any]], None]:
        def write(change: dict[str, Any]) -> None:
            line = json.dumps({"program": program, **change}, separators=(",", ":"))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

        return write

    def replay(self, service: FleetService) -> int:
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
            program = service.programs.get(change["program"])
            if program is None:
                continue
            _apply(program, change)
            count += 1
        return count


def _apply(program: Program, change: dict[str, Any]) -> None:
    at = datetime.fromisoformat(change["at"])
    live = program.clock
    program.clock = lambda: at
    try:
        op, actor = change["op"], change["actor"]
        if op == "switch":
            program.set_switch(SwitchRequest.model_validate(change["request"]), actor=actor)
        elif op in ("halt", "resume"):
            request = BatchRequest.model_validate(change["request"])
            (program.halt if op == "halt" else program.resume)(request, actor=actor)
        elif op == "collection":
            set_profile(program, CollectionRequest.model_validate(change["request"]), actor=actor)
        elif op in ("online", "offline"):
            known = [i for i in change["ids"] if i in program.agents]
            program.set_online(known, op == "online", actor=actor)
        else:
            raise ValueError(f"unknown change {op!r} in the fleet's state journal")
    finally:
        program.clock = live
