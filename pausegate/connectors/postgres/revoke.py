"""Revoking access to a dataset in PostgreSQL: close every path but break-glass in one transaction,
keep what break-glass roles had, end the sessions of those who lost access.

Every identifier reaches SQL through ``psycopg.sql.Identifier``; catalog names are never formatted
into query text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.catalog import (
    PUBLIC,
    READ_ALL,
    RELATION_KINDS,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    WRITE_ALL,
    Obj,
    State,
    load_state,
    members_closure,
)
from pausegate.connectors.postgres.gcpause import gc_paused
from pausegate.connectors.postgres.plan import Statement, kept_roles, plan_revoke
from pausegate.connectors.postgres.scope import scope_model
from pausegate.connectors.postgres.snapshot import snapshot_document, state_from_snapshot
from pausegate.errors import TargetRejectedError
from pausegate.models.access import UNREVOCABLE_PATHS, ExposureScope, RevokeOutcome
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_PASSES = 8


async def revoke_on(
    conn: AsyncConnection[Any],
    spec: DatasetSpec,
    persist: Callable[[dict[str, Any]], Awaitable[T]] | None,
    execute: Callable[[AsyncConnection[Any], Statement], Awaitable[None]],
    *,
    strict: bool,
    scopes: Sequence[ExposureScope] = (),
    earlier_snapshot: Mapping[str, Any] | None = None,
    terminate: bool = True,
) -> tuple[RevokeOutcome, T | None]:
    """Close every path to the dataset but break-glass on ``conn``, in one transaction, then end the
    sessions of login roles that lost access.

    The statements are planned from the live catalog (a retry after a partial run plans only what
    is left) and each runs through ``execute``. With ``persist``, the catalog read first is handed to
    it as a snapshot document, and the transaction commits only once ``persist`` has returned.
    ``scopes`` and ``earlier_snapshot``: what earlier records say had access (their login roles'
    sessions are ended too)."""
    with gc_paused():
        return await _revoke(conn, spec, persist, execute, strict=strict, scopes=scopes,
                             earlier_snapshot=earlier_snapshot, terminate=terminate)


async def _revoke(
    conn: AsyncConnection[Any],
    spec: DatasetSpec,
    persist: Callable[[dict[str, Any]], Awaitable[T]] | None,
    execute: Callable[[AsyncConnection[Any], Statement], Awaitable[None]],
    *,
    strict: bool,
    scopes: Sequence[ExposureScope],
    earlier_snapshot: Mapping[str, Any] | None,
    terminate: bool,
) -> tuple[RevokeOutcome, T | None]:
    executed = 0
    passes = 0
    regranted: list[str] = []
    stored: T | None = None
    async with conn.transaction():
        captured = await load_state(conn, spec, strict=strict)
        captured_at = datetime.now(UTC)
        persisting: asyncio.Task[T] | None = None
        if persist is not None:
            persisting = asyncio.ensure_future(persist(snapshot_document(spec.name, captured, captured_at)))
        try:
            state = captured
            break_glass = [r for r in spec.break_glass_roles if r in state.roles]
            before = await _break_glass_privileges(conn, state, break_glass)
            for attempt in range(1, MAX_PASSES + 1):
                passes = attempt
                statements = plan_revoke(state, break_glass)
                if not statements:
                    break
                for st in statements:
                    await execute(conn, st)
                    executed += 1
                state = await load_state(conn, spec, strict=False)
            else:
                raise TargetRejectedError(
                    f"revoke {spec.name}: access still open after {MAX_PASSES} passes: "
                    + "; ".join(s.description for s in plan_revoke(state, break_glass)[:5])
                )
            regranted = await _keep_break_glass(conn, state, before)
            if persisting is not None:
                stored = await persisting
        except BaseException:
            if persisting is not None and not persisting.done():
                persisting.cancel()
            raise
    kept = kept_roles(state, spec.break_glass_roles)
    lost = lost_login_roles(captured, kept)
    if earlier_snapshot is not None:
        lost |= lost_login_roles(state_from_snapshot(earlier_snapshot)[0], kept)
    for scope in scopes:
        lost |= lost_from_scope(scope, state, kept)
    terminated = await terminate_sessions(conn, lost) if terminate else 0
    outcome = RevokeOutcome(
        dataset=spec.name,
        statements=executed,
        passes=passes,
        sessions_terminated=terminated,
        break_glass_regranted=regranted,
        captured_at=captured_at,
        access_gone_at=datetime.now(UTC),
    )
    log.info("revoked", **outcome.model_dump())
    return outcome, stored


async def run_statement(conn: AsyncConnection[Any], st: Statement) -> None:
    """Run one planned statement, as its role when it names one (then back to the session's own)."""
    if st.as_role:
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(st.as_role)))
    try:
        await conn.execute(st.query)
    finally:
        if (
            st.as_role
            and not conn.broken
            and conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR
        ):
            await conn.execute("RESET ROLE")


async def planned_statements(conn: AsyncConnection[Any], spec: DatasetSpec) -> list[tuple[str | None, str]]:
    """The statements a revoke would run now (as role, SQL text), without running them."""
    state = await load_state(conn, spec, strict=False)
    break_glass = [r for r in spec.break_glass_roles if r in state.roles]
    return [(st.as_role, st.query.as_string(conn)) for st in plan_revoke(state, break_glass)]


def lost_from_scope(scope: ExposureScope, state: State, kept: set[str]) -> set[str]:
    """Login roles that lost access, by a recorded scope: every role with a revocable path (every
    login role when PUBLIC had one), less those no REVOKE reaches."""
    unrevocable = {a.role for a in scope.access if a.path in UNREVOCABLE_PATHS}
    lost = {a.role for a in scope.access if a.path not in UNREVOCABLE_PATHS}
    return _ordinary_logins(lost, unrevocable, state, kept)


def lost_login_roles(state: State, kept: set[str]) -> set[str]:
    """``lost_from_scope`` of the scope ``state`` derives, without deriving it: the same holders and
    membership closures as ``compute_access``, by role instead of by (role, object, path)."""
    closure = members_closure(state.edges)
    set_closure = members_closure(state.edges, set_only=True)
    owners = {o.oid: o.owner for o in state.objects}
    # Grantees first (a company's ACLs name each person a few times), then their members.
    revocable = {a.grantee for a in state.acls if a.oid in owners and a.grantee != owners[a.oid]}
    unrevocable = {a.grantee for a in state.acls if a.oid in owners and a.grantee == owners[a.oid]}
    unrevocable |= set(owners.values())
    for holders in (revocable, unrevocable):
        for role in [r for r in holders if r in closure and r != PUBLIC]:
            holders |= closure[role]
    for su in state.superusers():
        unrevocable.add(su)
        unrevocable.update(set_closure.get(su, ()))
    if any(o.kind != "function" for o in state.objects):
        for predefined in (READ_ALL, WRITE_ALL):
            if predefined in state.roles:
                revocable.update(closure.get(predefined, ()))
    revocable.update(d.grantee for d in state.defacls if d.grantee != d.creator)
    return _ordinary_logins(revocable, unrevocable, state, kept)


def _ordinary_logins(lost: set[str], unrevocable: set[str], state: State, kept: set[str]) -> set[str]:
    if PUBLIC in lost:
        lost = lost | {r.name for r in state.roles.values() if r.login}
    return {
        r
        for r in lost
        if r in state.roles
        and state.roles[r].login
        and not state.roles[r].superuser
        and r not in kept
        and r not in unrevocable
    }


async def terminate_sessions(conn: AsyncConnection[Any], lost: set[str]) -> int:
    """End sessions of login roles that lost access (a running query or open cursor would outlive
    the REVOKE)."""
    if not lost:
        return 0
    cur = await conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = ANY(%s)",
        (sorted(lost),),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def derive_scope(spec: DatasetSpec, snapshot: Mapping[str, Any]) -> ExposureScope:
    """The exposure scope of a catalog snapshot taken by ``revoke_capturing``: exactly the scope
    ``record_scope`` would have recorded from that catalog, timed when the catalog was read."""
    state, captured_at = state_from_snapshot(snapshot)
    return scope_model(spec, state, captured_at)


async def _privileges_of(
    conn: AsyncConnection[Any], roles: list[str], objects: list[Obj]
) -> set[tuple[str, int, str]]:
    """(role, oid, privilege) each role holds now, asked of the privilege functions."""
    if not roles or not objects:
        return set()
    out: set[tuple[str, int, str]] = set()
    checks: list[tuple[str, list[int], tuple[str, ...]]] = [
        ("has_table_privilege", [o.oid for o in objects if o.kind in RELATION_KINDS], TABLE_PRIVILEGES),
        ("has_sequence_privilege", [o.oid for o in objects if o.kind == "sequence"], SEQUENCE_PRIVILEGES),
        ("has_function_privilege", [o.oid for o in objects if o.kind == "function"], ("EXECUTE",)),
    ]
    for fn, oids, privs in checks:
        if not oids:
            continue
        cur = await conn.execute(
            sql.SQL(
                "SELECT r, o, p FROM unnest(%s::text[]) r, unnest(%s::oid[]) o, unnest(%s::text[]) p "
                "WHERE {}(r, o, p)"
            ).format(sql.Identifier(fn)),
            (roles, oids, list(privs)),
        )
        out |= {(r, o, p) for r, o, p in await cur.fetchall()}
    return out


async def _break_glass_privileges(
    conn: AsyncConnection[Any], state: State, roles: list[str]
) -> set[tuple[str, int, str]]:
    held = await _privileges_of(conn, roles, state.objects)
    if roles:
        cur = await conn.execute(
            "SELECT r FROM unnest(%s::text[]) r WHERE has_schema_privilege(r, %s::oid, 'USAGE')",
            (roles, state.schema_oid),
        )
        held |= {(r, state.schema_oid, "USAGE") for (r,) in await cur.fetchall()}
    return held


async def _keep_break_glass(
    conn: AsyncConnection[Any], state: State, before: set[tuple[str, int, str]]
) -> list[str]:
    """Break-glass roles keep what they had: a CASCADE or a revoked group grant may have taken part of
    it; grant that part back to them directly."""
    if not before:
        return []
    roles = sorted({r for r, _, _ in before})
    after = await _break_glass_privileges(conn, state, roles)
    objs = state.by_oid()
    regranted: list[str] = []
    for role, oid, priv in sorted(before - after):
        if oid == state.schema_oid and priv == "USAGE" and oid not in objs:
            await conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(state.schema), sql.Identifier(role)
                )
            )
            regranted.append(f"{role}:USAGE:{state.schema}")
            continue
        obj = objs[oid]
        await conn.execute(
            sql.SQL("GRANT {} ON {} TO {}").format(
                sql.SQL(priv),  # type: ignore[arg-type]  # one of the fixed privilege keywords
                _target_of(obj),
                sql.Identifier(role),
            )
        )
        regranted.append(f"{role}:{priv}:{obj.qname}")
    if regranted:
        log.warning("break-glass privileges granted back", grants=regranted)
    return regranted


def _target_of(obj: Obj) -> sql.Composable:
    if obj.kind == "function":
        args = sql.SQL(", ").join(sql.SQL(t) for t in obj.arg_types)  # type: ignore[arg-type]
        return sql.SQL("ROUTINE {}({})").format(sql.Identifier(obj.schema, obj.name), args)
    return sql.SQL("{} {}").format(sql.SQL(_verb(obj.kind)), sql.Identifier(obj.schema, obj.name))  # type: ignore[arg-type]


def _verb(kind: str) -> str:
    return "SEQUENCE" if kind == "sequence" else ("ROUTINE" if kind == "function" else "TABLE")
