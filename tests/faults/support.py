"""Helpers for fault tests: a worker in a process of its own, and counters of what targets really did."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pausegate.config import TemporalSettings, dump_settings
from pausegate.models.fleet import AgentState
from pausegate.reference.fleet.faults import FaultInjector
from pausegate.reference.fleet.fleet import Program
from tests.support.harness import Harness

ROOT = Path(__file__).resolve().parents[2]


async def until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class WorkerProcess:
    """``python -m tests.faults.worker_proc`` for one harness: start, wait until polling, kill -9."""

    def __init__(self, h: Harness, address: str, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        settings = h.settings.model_copy(
            update={"temporal": TemporalSettings(address=address, task_queue=h.task_queue)}
        )
        self.config = directory / "worker.toml"
        self.config.write_text(dump_settings(settings))
        self.markers = directory / "markers"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_at: float | None = None
        self._n = 0

    async def start(self, *, hold: list[str] | None = None, ambiguous_rate: float = 0.0, seed: int = 0,
                    regular_only: bool = False, file_size_limit: int | None = None) -> float:
        """Start a worker and return the wall-clock time it began polling. ``file_size_limit``: the
        process's RLIMIT_FSIZE (its log then goes through a pipe, which the limit does not touch)."""
        self._n += 1
        ready = self.directory / f"ready-{self._n}-{uuid.uuid4().hex[:6]}"
        args = [sys.executable, "-m", "tests.faults.worker_proc", "--config", str(self.config),
                "--ready", str(ready), "--markers", str(self.markers),
                "--ambiguous-rate", str(ambiguous_rate), "--seed", str(seed)]
        for point in hold or []:
            args += ["--hold", point]
        if regular_only:
            args.append("--regular-only")
        if file_size_limit is not None:
            args += ["--file-size-limit", str(file_size_limit)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = (self.directory / f"worker-{self._n}.log").open("wb")
        # Starting a process returns at once; waiting for it to poll is the async part below.
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env,  # noqa: ASYNC220
                                     stdout=subprocess.PIPE if file_size_limit is not None else log,
                                     stderr=subprocess.STDOUT)
        proc = self.proc
        if proc.stdout is not None:
            threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}; see {log.name}")
            return ready.exists() and bool(ready.read_text())

        await until(up, timeout=30, what="the worker to poll")
        self.ready_at = float(ready.read_text())
        return self.ready_at

    def set_file_size_limit(self, limit: int) -> None:
        """Change the running worker's RLIMIT_FSIZE soft limit (``resource.RLIM_INFINITY``: space is back)."""
        assert self.proc is not None
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def marker(self, point: str) -> bool:
        return (self.markers / point.replace(":", "-")).exists()

    def kill(self) -> None:
        """kill -9: no cleanup, no goodbye to the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def _drain(source: IO[bytes], sink: IO[bytes]) -> None:
    for line in source:
        sink.write(line)
        sink.flush()


# ---------------------------------------------------------------- what the targets did


def fleet_program(h: Harness) -> Program:
    program: Program = h.fleet_state.program(h.program)
    return program


def fleet_faults(h: Harness) -> FaultInjector:
    faults: FaultInjector = h.fleet.app.state.faults
    return faults


@dataclass(frozen=True)
class FleetEffects:
    """Effects the fleet applied (repeated or replayed commands add nothing)."""

    switch_changes: int
    collecting: int
    halted: int
    offline: int
    batches_applied: int
    batches_replayed: int
    max_halts_per_agent: int
    max_resumes_per_agent: int
    agents_halted_individually: int


def fleet_effects(h: Harness) -> FleetEffects:
    p = fleet_program(h)
    agents = list(p.agents.values())
    return FleetEffects(
        switch_changes=p.counters.switch_changes,
        collecting=p.count(AgentState.COLLECTING),
        halted=p.count(AgentState.HALTED),
        offline=p.count(AgentState.OFFLINE),
        batches_applied=p.counters.batches_applied,
        batches_replayed=p.counters.batches_replayed,
        max_halts_per_agent=max((a.halts for a in agents), default=0),
        max_resumes_per_agent=max((a.resumes for a in agents), default=0),
        agents_halted_individually=sum(1 for a in agents if a.halts),
    )


_STATEMENT = re.compile(r"^(?:statement|execute [^:]*): \s*(REVOKE|GRANT|BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)


def pg_statements(pglog: Path, database: str) -> dict[str, int]:
    """REVOKE and GRANT statements PostgreSQL logged for ``database`` (log_statement = all) that took effect.

    The server logs a statement when it runs, not when it commits: statements of a transaction that was
    rolled back, or whose session died (a killed worker), are not counted.
    """
    counts = {"REVOKE": 0, "GRANT": 0}
    open_txn: dict[str, list[str] | None] = {}  # session -> statements of its open transaction
    for path in sorted(pglog.glob("*.json")):
        with path.open("rb") as f:
            for raw in f:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("dbname") != database:
                    continue
                m = _STATEMENT.match(str(entry.get("message", "")))
                if not m:
                    continue
                verb, session = m.group(1).upper(), str(entry.get("session_id", ""))
                pending = open_txn.get(session)
                if verb == "BEGIN":
                    open_txn[session] = []
                elif verb == "COMMIT":
                    for v in pending or []:
                        counts[v] += 1
                    open_txn[session] = None
                elif verb == "ROLLBACK":
                    open_txn[session] = None
                elif pending is not None:
                    pending.append(verb)
                else:
                    counts[verb] += 1
    return counts


async def settled_pg_statements(pglog: Path, database: str) -> dict[str, int]:
    """``pg_statements`` once the logging collector has caught up (two equal reads in a row)."""
    last = await asyncio.to_thread(pg_statements, pglog, database)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        now = await asyncio.to_thread(pg_statements, pglog, database)
        if now == last:
            return now
        last = now
    return last


def database_of(h: Harness) -> str:
    return h.program.replace("-", "_")


async def attempts(handle: Any) -> dict[str, list[int]]:
    """The attempt each finished activity ended on, by activity type, in the order they were scheduled:
    how often each was retried, counted, where a clock would only say how long it took."""
    from temporalio.api.enums.v1 import EventType

    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    out: dict[str, list[int]] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            out.setdefault(scheduled.get(attrs.scheduled_event_id, "?"), []).append(attrs.attempt)
    return out


async def slow_attempts(handle: Any) -> list[str]:
    """Activities that needed more than one attempt or more than a second: ``type (attempt n, scheduled +Xs,
    done +Ys)``, and workflow tasks that timed out, times from the workflow's start. A killed worker's
    attempts end by timing out."""
    from temporalio.api.enums.v1 import EventType

    history = await handle.fetch_history()
    events = list(history.events)
    t0 = events[0].event_time.ToDatetime().timestamp()
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, int] = {}
    out: list[str] = []
    for event in events:
        at = event.event_time.ToDatetime().timestamp() - t0
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            kind = event.workflow_task_timed_out_event_attributes.timeout_type
            out.append(f"workflow task timed out ({kind}, +{at:.1f}s)")
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = (event.activity_task_scheduled_event_attributes.activity_type.name, at)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            started[attrs.scheduled_event_id] = attrs.attempt
        elif event.event_type in (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                  EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                                  EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
            attrs = (event.activity_task_completed_event_attributes
                     if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                     else event.activity_task_failed_event_attributes
                     if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                     else event.activity_task_timed_out_event_attributes)
            sid = attrs.scheduled_event_id
            name, sched = scheduled.get(sid, ("?", 0.0))
            if started.get(sid, 1) > 1 or at - sched > 1.0:
                out.append(f"{name} (attempt {started[sid]}, scheduled +{sched:.1f}s, done +{at:.1f}s)")
    return out
