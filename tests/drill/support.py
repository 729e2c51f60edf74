"""Helpers for drill tests: the canary's catalog as sets and as PostgreSQL holds it, the prober beside a
drill, the fleet's canary agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from temporalio.client import WorkflowHandle

from pausegate.connectors.postgres.canary_restore import Entries, carriers, entries
from pausegate.connectors.postgres.catalog import load_state
from pausegate.drill.prober import Prober
from pausegate.errors import PauseNotFound
from pausegate.models.drill import DrillPhase, DrillRequest, DrillState, ProberFigures
from pausegate.models.fleet import AgentState
from pausegate.models.runbook import Runbook
from pausegate.temporal.drills import read_drill, start_drill
from tests.faults.support import until
from tests.support.harness import COMMANDER, Harness
from tests.support.polling import HANG_GUARD_SECONDS, polled

HOLD = timedelta(seconds=1)


def drill_runbook(h: Harness, **canary: Any) -> Runbook:
    """The harness's runbook with its canary held briefly (and changed as given)."""
    assert h.runbook.canary is not None
    return h.runbook.model_copy(update={"canary": h.runbook.canary.model_copy(update={"hold": HOLD, **canary})})


async def catalog(h: Harness, runbook: Runbook) -> Entries:
    """The canary's entries now, as the restore compares them."""
    assert runbook.canary is not None
    spec = runbook.canary.dataset()
    async with await psycopg.AsyncConnection.connect(h.database_dsn, autocommit=True) as conn:
        state = await load_state(conn, spec, strict=False)
    return entries(state, roles=carriers(state))


def raw_acls(h: Harness, schema: str) -> dict[str, list[str]]:
    """relacl, column ACLs and the schema's ACL as PostgreSQL holds them, each array's items sorted."""
    with psycopg.connect(h.database_dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname, coalesce(c.relacl::text[], '{}') FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "UNION ALL SELECT c.relname || '.' || a.attname, coalesce(a.attacl::text[], '{}') FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND a.attacl IS NOT NULL "
            "UNION ALL SELECT '(schema)', coalesce(nspacl::text[], '{}') FROM pg_namespace WHERE nspname = %s "
            "UNION ALL SELECT '(defaults)', coalesce(d.defaclacl::text[], '{}') FROM pg_default_acl d "
            "JOIN pg_namespace n ON n.oid = d.defaclnamespace WHERE n.nspname = %s",
            (schema, schema, schema, schema)).fetchall()
    return {name: sorted(acl) for name, acl in rows}


def reads(h: Harness, role: str, table: str) -> bool:
    with psycopg.connect(h.database_dsn) as conn:
        try:
            conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
            conn.execute(psycopg.sql.SQL("SELECT 1 FROM {} LIMIT 1").format(
                psycopg.sql.Identifier(*table.split("."))))
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def agent_states(h: Harness) -> dict[str, AgentState]:
    program = h.fleet_state.program(h.program)
    return {aid: program.state_of(program.agents[aid]) for aid in program.agents}


@asynccontextmanager
async def probing(h: Harness, runbook: Runbook, out: Path) -> AsyncIterator[asyncio.Task[ProberFigures]]:
    """A prober beside the drill (its baseline taken before the drill starts)."""
    ready = out.with_suffix(".ready")
    prober = Prober(runbook, h.database_dsn, h.connectors.fleet(runbook.fleet.connection), h.client, out,
                    interval=0.05)
    task = asyncio.create_task(prober.run(ready=ready, timeout=120))
    try:
        await until(lambda: ready.exists() or task.done(), timeout=30, what="the prober's baseline")
        yield task
    finally:
        if not task.done():
            task.cancel()


async def drill(h: Harness, runbook: Runbook, *, await_prober: bool = True) -> WorkflowHandle[Any, DrillState]:
    return await start_drill(h.client, DrillRequest(program=h.program, commander=COMMANDER, runbook=runbook),
                             task_queue=h.task_queue, tuning=h.tuning, await_prober=await_prober)


async def wait_phase(h: Harness, phase: DrillPhase, *, timeout: float = HANG_GUARD_SECONDS) -> DrillState:
    """Poll the program's drill until it is in ``phase``; ``timeout`` only guards against a hang."""
    async def drill_state() -> DrillState | None:
        try:
            return await read_drill(h.client, h.program)
        except PauseNotFound:  # not started yet
            return None
    return await polled(drill_state, until=lambda state: state.phase == phase, what=f"the drill {phase}",
                        every=0.05, guard=timeout)
