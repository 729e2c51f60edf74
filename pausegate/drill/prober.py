"""The prober: a process apart from the drill's workflow that times the drill as the world sees it.

    python -m pausegate.drill.prober --config worker.toml --runbook runbooks/P.yaml --out probes.jsonl

It reads as each canary reader (can it still read the canary?), as each watched reader (can it still
read the program's datasets?) and asks the fleet which agents are halted, every ``interval``. From
what it sees it times the switch-off (every canary agent halted), access gone (no canary reader
reads) and the restore (both back), in seconds from the drill's start, and sends them to the drill
(``report_probe``, sealed and addressed) for its report. Anything outside the canary that changes against what it saw
before the drill (a watched reader refused, a non-canary agent halted) is a stop condition: it tells
the drill to stop and restore at once. Each probe is one JSON line in ``--out``: times, booleans and
counts, never data.

Readers are probed through the administrative connection with ``SET ROLE`` (the prober holds no
reader's password; a reader's own sessions end when a revoke takes its access, the prober's do not).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError

from pausegate.config import Settings, load_settings
from pausegate.connectors.interfaces import FleetConnector
from pausegate.connectors.registry import Connectors
from pausegate.errors import PauseNotFound
from pausegate.logging import get_logger
from pausegate.models.drill import DrillOutcome, DrillPhase, ProberFigures, ProberReport, StopInput
from pausegate.models.fleet import AgentState
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.runbook import CanarySpec, Runbook
from pausegate.runbook.loader import load_runbook
from pausegate.temporal.client import connect
from pausegate.temporal.drills import drill_handle, drill_id
from pausegate.temporal.sealing import addressed_update, new_update_id
from workflows.drill import DrillWorkflow

log = get_logger("pausegate.drill.prober")

PROBER = "prober"
STATEMENT_TIMEOUT_MS = 2_000
PAGE = 5_000


@dataclass
class Seen:
    """One probe: what each side of the drill looked like at ``at``."""

    at: datetime
    canary_readable: bool
    canary_halted: bool
    watched_refused: list[str] = field(default_factory=list)
    others_halted: list[str] = field(default_factory=list)

    def line(self, started_at: datetime | None) -> str:
        since = None if started_at is None else round((self.at - started_at).total_seconds(), 3)
        return json.dumps({"at": self.at.isoformat(), "since_start": since, "canary_readable": self.canary_readable,
                           "canary_halted": self.canary_halted, "watched_refused": len(self.watched_refused),
                           "others_halted": len(self.others_halted)})


class Prober:
    """Probes one program's canary and what lies around it; see the module's docstring."""

    def __init__(self, runbook: Runbook, dsn: str, fleet: FleetConnector, client: Client, out: Path, *,
                 interval: float = 0.05) -> None:
        if runbook.canary is None:
            raise ValueError(f"the runbook of {runbook.program.id} names no canary")
        self.runbook = runbook
        self.canary: CanarySpec = runbook.canary
        self.dsn = dsn
        self.fleet = fleet
        self.client = client
        self.out = out
        self.interval = interval
        self.figures = ProberFigures()
        self.baseline_halted: set[str] = set()
        self.baseline_refused: set[str] = set()
        self.stopped = False
        self.name = f"{PROBER}@{socket.gethostname()}"[:200]

    async def run(self, *, ready: Path | None = None, timeout: float = 600.0) -> ProberFigures:
        """Take the baseline, then probe until the drill is seen restored (or has ended, or ``timeout``)."""
        deadline = time.monotonic() + timeout
        async with await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}") as conn:
            tables = await self.canary_tables(conn)
            first = await self.probe(conn, tables)
            self.baseline_halted = set(first.others_halted)
            self.baseline_refused = set(first.watched_refused)
            if ready is not None:
                await asyncio.to_thread(ready.write_text, str(time.time()))
            started_at: datetime | None = None
            with self.out.open("a") as out:
                while time.monotonic() < deadline:
                    if started_at is None:
                        started_at = await self._drill_started()
                    seen = await self.probe(conn, tables)
                    self.figures = self.figures.model_copy(update={"probes": self.figures.probes + 1})
                    out.write(seen.line(started_at) + "\n")
                    out.flush()
                    if started_at is not None and await self._judge(seen, started_at):
                        break
                    await asyncio.sleep(self.interval)
        return self.figures

    async def _judge(self, seen: Seen, started_at: datetime) -> bool:
        """Update the figures from one probe; True once the restore is seen (the prober's work is done)."""
        since = round((seen.at - started_at).total_seconds(), 3)
        f, update = self.figures, dict[str, Any]()
        if f.switch_off_seconds is None and seen.canary_halted:
            update["switch_off_seconds"] = since
        if f.access_gone_seconds is None and not seen.canary_readable:
            update["access_gone_seconds"] = since
        contained_once = (f.switch_off_seconds is not None or "switch_off_seconds" in update) and \
            (f.access_gone_seconds is not None or "access_gone_seconds" in update)
        done = False
        if contained_once and seen.canary_readable and not seen.canary_halted:
            update["restored_seconds"] = since
            done = True
        outside = [f"reader {r} refused" for r in seen.watched_refused if r not in self.baseline_refused]
        outside += [f"agent {a} halted" for a in seen.others_halted if a not in self.baseline_halted]
        if outside:
            update["outside_changes"] = sorted(set(f.outside_changes) | set(outside))[:MAX_LISTED_IDS]
        if update:
            self.figures = f.model_copy(update=update)
            await self._send(self.figures)
        if outside and not self.stopped:
            self.stopped = True
            await self._stop("; ".join(outside[:5]))
        if not done and await self._drill_over():
            # The drill ended without the prober seeing both sides contained (a drill stopped early):
            # what the prober sees now is the restore.
            done = seen.canary_readable and not seen.canary_halted
            if done:
                self.figures = self.figures.model_copy(update={"restored_seconds": since})
                await self._send(self.figures)
        return done

    # ------------------------------------------------------------------ probes

    async def probe(self, conn: psycopg.AsyncConnection[Any], tables: list[str]) -> Seen:
        """Look once: the canary readers, the watched readers, the fleet's halted agents."""
        at = datetime.now(UTC)
        readable = True
        for reader in self.canary.readers:
            for table in tables:
                readable = readable and await _reads(conn, reader, self.canary.schema_name, table)
        refused = []
        for reader in self.canary.watched_readers:
            for d in self.runbook.datasets:
                if d.connection != self.canary.connection:
                    continue
                for table in d.tables:
                    if not await _reads(conn, reader, d.schema_name, table):
                        refused.append(f"{reader}:{d.schema_name}.{table}")
        halted = await self._halted()
        canary = set(self.canary.agents)
        return Seen(at=at, canary_readable=readable, canary_halted=canary <= halted,
                    watched_refused=refused, others_halted=sorted(halted - canary))

    async def _halted(self) -> set[str]:
        ids: set[str] = set()
        token: str | None = None
        while True:
            page = await self.fleet.list_agents(self.runbook.program.id, page_token=token, page_size=PAGE,
                                                state=AgentState.HALTED)
            ids |= {a.id for a in page.agents}
            token = page.next_page_token
            if not token:
                return ids

    async def canary_tables(self, conn: psycopg.AsyncConnection[Any]) -> list[str]:
        """The canary's tables: those the runbook lists, else every relation of its schema now."""
        if self.canary.tables:
            return list(self.canary.tables)
        cur = await conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1", (self.canary.schema_name,))
        return [r[0] for r in await cur.fetchall()]

    # ------------------------------------------------------------------ the drill

    async def _drill_started(self) -> datetime | None:
        try:
            status = await drill_handle(self.client, self.runbook.program.id).query(DrillWorkflow.status)
        except RPCError:
            return None
        return status.started_at if status.phase != DrillPhase.RESTORED else None

    async def _drill_over(self) -> bool:
        try:
            described = await drill_handle(self.client, self.runbook.program.id).describe()
        except RPCError:
            return False
        return described.status != WorkflowExecutionStatus.RUNNING

    async def _send(self, figures: ProberFigures) -> None:
        """Report through an update sealed for the drill's run and the update's id: the drill takes no
        figures arriving otherwise (``DrillWorkflow.report_probe``)."""
        update_id = new_update_id()
        try:
            handle, report = await addressed_update(
                self.client, drill_id(self.client, self.runbook.program.id),
                ProberReport(figures=figures, by=self.name), update_id, missing="no drill")
            await handle.execute_update(DrillWorkflow.report_probe, report, id=update_id)
        except (RPCError, PauseNotFound, WorkflowUpdateFailedError) as exc:
            log.warning("prober.figures_not_sent", error=str(exc)[:200], kind=type(exc).__name__)

    async def _stop(self, reason: str) -> None:
        log.warning("prober.stop_condition", reason=reason)
        try:
            await drill_handle(self.client, self.runbook.program.id).signal(
                DrillWorkflow.stop, StopInput(outcome=DrillOutcome.STOPPED, by=PROBER,
                                              reason=f"outside the canary: {reason}"[:500]))
        except RPCError as exc:
            log.error("prober.stop_not_sent", error=str(exc)[:200])


async def _reads(conn: psycopg.AsyncConnection[Any], role: str, schema: str, table: str) -> bool:
    """Whether ``role`` reads ``schema.table`` now (a real read of at most one row, nothing kept)."""
    try:
        async with conn.transaction():
            await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            await conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(schema, table)))
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


async def run_prober(settings: Settings, runbook: Runbook, out: Path, *, ready: Path | None = None,
                     interval: float = 0.05, timeout: float = 600.0) -> ProberFigures:
    """Probe one drill of ``runbook``'s program with the deployment's connections."""
    assert runbook.canary is not None
    client = await connect(settings.temporal, settings.encryption)
    connectors = Connectors(settings)
    try:
        dsn = settings.postgres(runbook.canary.connection).dsn.get_secret_value()
        prober = Prober(runbook, dsn, connectors.fleet(runbook.fleet.connection), client, out, interval=interval)
        return await prober.run(ready=ready, timeout=timeout)
    finally:
        await connectors.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pausegate.drill.prober")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--runbook", type=Path, required=True)
    parser.add_argument("--program", default=None, help="The program id, when it differs from the runbook's.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    runbook = load_runbook(args.runbook)
    if args.program:
        runbook = runbook.model_copy(update={"program": runbook.program.model_copy(update={"id": args.program})})
    figures = asyncio.run(run_prober(load_settings(args.config), runbook, args.out, ready=args.ready,
                                     interval=args.interval, timeout=args.timeout))
    print(figures.model_dump_json())


if __name__ == "__main__":
    main()
