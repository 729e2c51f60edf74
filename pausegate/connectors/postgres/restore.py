"""Restoring a plan's grants on a dataset in PostgreSQL: check them against the live catalog, grant
exactly them (with the schema and sequence USAGE they need), and check each through the database.

Every identifier reaches SQL through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.admin import MAX_LISTED
from pausegate.connectors.postgres.catalog import RELATION_KINDS, Obj, State, load_state
from pausegate.errors import TargetRejectedError
from pausegate.models.access import GrantSpec, RestoreResult
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

COLUMN_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "REFERENCES"})


async def plan_problems_on(conn: AsyncConnection[Any], spec: DatasetSpec, grants: list[GrantSpec]) -> list[str]:
    """Why the planned grants could not be applied now (roles, tables and columns that do not exist,
    privileges that do not apply); empty when they could. Changes nothing."""
    state = await load_state(conn, spec, strict=True)
    tables = _tables_of(spec, state)
    columns = await _columns(conn, [o.oid for o in tables.values()])
    return _plan_problems(spec, grants, state, tables, columns)


async def restore_on(conn: AsyncConnection[Any], spec: DatasetSpec, grants: list[GrantSpec]) -> RestoreResult:
    """Grant exactly the planned privileges (plus the schema USAGE, and sequence USAGE for INSERT,
    they need) in one transaction, then check each through the database. Granting again is a no-op."""
    async with conn.transaction():
        state = await load_state(conn, spec, strict=True)
        tables = _tables_of(spec, state)
        columns = await _columns(conn, [o.oid for o in tables.values()])
        statements = _restore_statements(spec, grants, state, tables, columns)
        for st in statements:
            await conn.execute(st)
        missing = await _check_grants(conn, spec, grants, state, tables)
    result = RestoreResult(
        dataset=spec.name,
        granted=sum(len(g.privileges) for g in grants),
        verified=not missing,
        missing=missing[:MAX_LISTED],
        statements=len(statements),
    )
    log.info("restored", dataset=spec.name, granted=result.granted, verified=result.verified)
    return result


def _tables_of(spec: DatasetSpec, state: State) -> dict[str, Obj]:
    return {o.name: o for o in state.objects if o.schema == spec.schema_name and o.kind in RELATION_KINDS}


async def _columns(conn: AsyncConnection[Any], oids: list[int]) -> dict[int, set[str]]:
    cur = await conn.execute(
        "SELECT attrelid, attname FROM pg_attribute WHERE attrelid = ANY(%s::oid[]) AND attnum > 0 "
        "AND NOT attisdropped",
        (oids,),
    )
    out: dict[int, set[str]] = defaultdict(set)
    for oid, name in await cur.fetchall():
        out[oid].add(name)
    return out


def _plan_problems(
    spec: DatasetSpec, grants: list[GrantSpec], state: State, tables: dict[str, Obj], columns: dict[int, set[str]]
) -> list[str]:
    """Why the live database cannot apply ``grants`` (none when it can)."""
    problems: list[str] = []
    for g in grants:
        if g.dataset != spec.name:
            problems.append(f"grant for dataset {g.dataset!r} given to dataset {spec.name!r}")
        if g.table not in tables:
            problems.append(f"{g.table!r} is not a table of dataset {spec.name}")
        elif g.columns:
            unknown = sorted(set(g.columns) - columns[tables[g.table].oid])
            if unknown:
                problems.append(f"{g.table} has no column {', '.join(unknown)}")
        if g.role not in state.roles:
            problems.append(f"role {g.role!r} does not exist")
        if g.columns and set(g.privileges) - COLUMN_PRIVILEGES:
            problems.append(f"{', '.join(sorted(set(g.privileges) - COLUMN_PRIVILEGES))} cannot be granted on "
                            f"columns of {g.table} (column grants take {', '.join(sorted(COLUMN_PRIVILEGES))})")
    return problems


def _restore_statements(
    spec: DatasetSpec,
    grants: list[GrantSpec],
    state: State,
    tables: dict[str, Obj],
    columns: dict[int, set[str]],
) -> list[sql.Composed]:
    problems = _plan_problems(spec, grants, state, tables, columns)
    if problems:
        raise TargetRejectedError(f"restore {spec.name}: " + "; ".join(problems))
    out: list[sql.Composed] = []
    schema_roles: set[str] = set()
    for g in grants:
        obj = tables[g.table]
        cols: sql.Composable = sql.SQL("")
        if g.columns:
            cols = sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in g.columns))
        privs = sql.SQL(", ").join(sql.SQL(p) + cols for p in g.privileges)  # type: ignore[arg-type]
        out.append(
            sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                privs, sql.Identifier(obj.schema, obj.name), sql.Identifier(g.role)
            )
        )
        schema_roles.add(g.role)
        if "INSERT" in g.privileges:
            for seq in _sequences_of(state, obj):
                out.append(
                    sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                        sql.Identifier(seq.schema, seq.name), sql.Identifier(g.role)
                    )
                )
    for role in sorted(schema_roles):
        out.insert(
            0,
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(spec.schema_name), sql.Identifier(role)
            ),
        )
    return out


def _sequences_of(state: State, table: Obj) -> list[Obj]:
    return [o for o in state.objects if o.kind == "sequence" and table.qname in o.depends_on]


async def _check_grants(
    conn: AsyncConnection[Any],
    spec: DatasetSpec,
    grants: list[GrantSpec],
    state: State,
    tables: dict[str, Obj],
) -> list[str]:
    missing: list[str] = []
    for g in grants:
        obj = tables[g.table]
        cur = await conn.execute(
            "SELECT has_schema_privilege(%s, %s::oid, 'USAGE')", (g.role, state.schema_oid)
        )
        row = await cur.fetchone()
        if not (row and row[0]):
            missing.append(f"{g.role}:USAGE:{spec.schema_name}")
        for p in g.privileges:
            if g.columns:
                cur = await conn.execute(
                    "SELECT c FROM unnest(%s::text[]) c WHERE NOT has_column_privilege(%s, %s::oid, c, %s)",
                    (g.columns, g.role, obj.oid, p),
                )
                missing += [f"{g.role}:{p}({c}):{obj.qname}" for (c,) in await cur.fetchall()]
            else:
                cur = await conn.execute("SELECT has_table_privilege(%s, %s::oid, %s)", (g.role, obj.oid, p))
                row = await cur.fetchone()
                if not (row and row[0]):
                    missing.append(f"{g.role}:{p}:{obj.qname}")
        if "INSERT" in g.privileges:
            for seq in _sequences_of(state, obj):
                cur = await conn.execute(
                    "SELECT has_sequence_privilege(%s, %s::oid, 'USAGE')", (g.role, seq.oid)
                )
                row = await cur.fetchone()
                if not (row and row[0]):
                    missing.append(f"{g.role}:USAGE:{seq.qname}")
    return missing
