"""Dataset access in PostgreSQL: record who can reach a dataset, revoke it, prove it, restore a plan.

Every identifier reaches SQL through ``psycopg.sql.Identifier``; catalog names are never formatted
into query text.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.catalog import (
    PATH_PRIORITY,
    PUBLIC,
    READ_ALL,
    RELATION_KINDS,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    WRITE_ALL,
    Obj,
    ReadPath,
    State,
    compute_access,
    load_data_subjects,
    load_read_paths,
    load_state,
    members_closure,
)
from pausegate.connectors.postgres.gcpause import gc_paused
from pausegate.connectors.postgres.plan import Statement, kept_roles, plan_revoke
from pausegate.connectors.postgres.scope import scope_document, scope_facts, scope_model
from pausegate.connectors.postgres.snapshot import snapshot_document, state_from_snapshot
from pausegate.connectors.scope_facts import DerivedScope, ScopeFacts
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.access import (
    UNREVOCABLE_PATHS,
    AccessPath,
    DatasetCheck,
    ExposureScope,
    GrantSpec,
    RestoreResult,
    RevokeOutcome,
    RoleAccess,
)
from pausegate.runbook.model import DatasetSpec

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_PASSES = 8
MAX_LISTED = 200
WITNESS_ROLES = 3

# Runs a SELECT as each role inside a subtransaction; insufficient_privilege is the expected answer.
# Server-side quoting (format %I) keeps identifiers out of client-side string building.
PROBE_FUNCTION = """
CREATE FUNCTION pg_temp.pausegate_probe(roles text[], schemas text[], rels text[])
RETURNS TABLE(role text, schema text, rel text, state text) LANGUAGE plpgsql AS $$
DECLARE i int;
BEGIN
  FOR i IN 1 .. coalesce(array_length(roles, 1), 0) LOOP
    role := roles[i]; schema := schemas[i]; rel := rels[i];
    BEGIN
      EXECUTE format('SET LOCAL ROLE %I', roles[i]);
      EXECUTE format('SELECT 1 FROM %I.%I LIMIT 1', schemas[i], rels[i]);
      RESET ROLE;
      state := 'read';
    EXCEPTION WHEN OTHERS THEN
      state := SQLSTATE;
    END;
    RETURN NEXT;
  END LOOP;
END $$
"""


def _verb(kind: str) -> str:
    return "SEQUENCE" if kind == "sequence" else ("ROUTINE" if kind == "function" else "TABLE")


class PostgresAccess:
    """``DatasetAccess`` for PostgreSQL 16+ through an administrative connection (``dsn``).

    The connecting role should be a superuser (or own the dataset and hold the roles it revokes):
    it revokes grants as their grantors, verifies by ``SET ROLE`` to each former reader, and it is
    treated as the operator, which keeps its own access like a break-glass role.

    Verification asks the database about every role that had access (the privilege functions, or for
    a company's scope ``pg_has_role`` against each object's remaining grantees); real reads as former
    readers cover every (role, relation) pair while they fit ``read_probe_limit``, and beyond it a
    random sample that reads every relation.
    """

    def __init__(
        self,
        dsn: str,
        *,
        read_probe_limit: int = 2_000,
        terminate_sessions: bool = True,
        lock_timeout_ms: int = 5_000,
        connect_timeout_s: int = 10,
    ) -> None:
        self._dsn = dsn
        self._read_probe_limit = read_probe_limit
        self._terminate = terminate_sessions
        self._lock_timeout_ms = lock_timeout_ms
        self._connect_timeout_s = connect_timeout_s
        self.last_revoke: RevokeOutcome | None = None

    # -- connection and error mapping -------------------------------------------------------------

    @asynccontextmanager
    async def _connect(self, what: str) -> AsyncIterator[AsyncConnection[Any]]:
        try:
            conn = await AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        except psycopg.OperationalError as e:
            raise TargetUnavailableError(f"{what}: cannot connect to PostgreSQL: {e}".strip()) from e
        try:
            async with conn:
                await conn.execute(
                    sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{self._lock_timeout_ms}ms"))
                )
                yield conn
        except psycopg.errors.InsufficientPrivilege as e:
            raise TargetRejectedError(
                f"{what}: the administrative connection lacks a privilege it needs: {e.diag.message_primary}"
            ) from e
        except psycopg.OperationalError as e:
            # Lost connections, lock timeouts, cancels, serialization failures: worth retrying.
            raise TargetUnavailableError(f"{what}: {e}".strip()) from e
        except psycopg.Error as e:
            raise TargetRejectedError(f"{what}: PostgreSQL refused: {e}".strip()) from e

    # -- record ------------------------------------------------------------------------------------

    async def record_scope(self, spec: DatasetSpec) -> ExposureScope:
        """Every current path by which a role reaches the dataset, read from the catalogs."""
        async with self._connect(f"record scope of {spec.name}") as conn:
            async with conn.transaction():
                # One snapshot for every catalog read.
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                state = await load_state(conn, spec, strict=True)
        scope = scope_model(spec, state)
        log.info(
            "scope recorded",
            dataset=spec.name,
            objects=len(scope.objects),
            grants=len(scope.grants),
            access=len(scope.access),
        )
        return scope

    def derive_scope(self, spec: DatasetSpec, snapshot: Mapping[str, Any]) -> ExposureScope:
        """The exposure scope of a catalog snapshot ``revoke_capturing`` persisted."""
        return derive_scope(spec, snapshot)

    def scope_from_snapshot(self, spec: DatasetSpec, snapshot: Mapping[str, Any]) -> DerivedScope:
        """What verification needs of the snapshot's scope now, and its document on demand."""
        with gc_paused():
            state, captured_at = state_from_snapshot(snapshot)

        def facts() -> ScopeFacts:
            with gc_paused():
                return scope_facts(state)

        return DerivedScope(facts=facts, document=lambda: scope_document(spec, state, captured_at))

    # -- who saw what ------------------------------------------------------------------------------

    async def read_paths(self, spec: DatasetSpec) -> list[ReadPath]:
        """Views, materialized views and routines (any schema, any security) that read the dataset."""
        async with self._connect(f"read paths of {spec.name}") as conn:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return await load_read_paths(conn, spec)

    async def data_subjects(
        self, spec: DatasetSpec, column: str, time_column: str | None, until: datetime
    ) -> tuple[list[str], list[str]]:
        """(tables holding ``column``, the distinct people in their rows collected before ``until``)."""
        async with self._connect(f"data subjects of {spec.name}") as conn:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return await load_data_subjects(conn, spec, column, time_column, until)

    async def log_fence(self, marker: str) -> None:
        """Run a statement whose logged text is ``marker``: once the server's log holds it, it holds
        every statement logged before it (one collector writes the log in order)."""
        async with self._connect("log fence") as conn:
            await conn.execute(sql.SQL("SELECT {}").format(sql.Literal(marker)))

    # -- revoke ------------------------------------------------------------------------------------

    async def revoke(self, spec: DatasetSpec, scope: ExposureScope) -> RevokeOutcome:
        """Close every path except break-glass; ``statements`` is 0 when it was already contained."""
        return await self.revoke_detailed(spec, scope)

    async def revoke_detailed(self, spec: DatasetSpec, scope: ExposureScope) -> RevokeOutcome:
        """As ``revoke``, with what was done. The statements are planned from the live catalog, so a
        retry after a partial run plans only what is left; all of them run in one transaction."""
        outcome, _ = await self._revoke(spec, None, strict=False, scopes=[scope])
        return outcome

    async def revoke_capturing(
        self,
        spec: DatasetSpec,
        persist: Callable[[dict[str, Any]], Awaitable[T]],
        *,
        earlier_snapshot: Mapping[str, Any] | None = None,
    ) -> tuple[RevokeOutcome, T]:
        """Capture the raw catalog and close every path but break-glass, in one transaction.

        The catalog is read first (a few batched queries), handed to ``persist`` as a snapshot
        document (``snapshot.snapshot_document``), and the revoke commits only once ``persist`` has
        returned: a revoke never commits without the record of what was open before it. ``persist``
        runs while the REVOKEs do. Nothing is derived here: the exposure scope is derived from the
        snapshot afterwards (``derive_scope``). ``earlier_snapshot``: what an earlier attempt captured
        (a retry after a committed revoke captures a closed catalog; its sessions are still ended).
        """
        outcome, stored = await self._revoke(spec, persist, strict=True, earlier_snapshot=earlier_snapshot)
        assert stored is not None  # persist ran and returned before the commit
        return outcome, stored

    async def _revoke(
        self,
        spec: DatasetSpec,
        persist: Callable[[dict[str, Any]], Awaitable[T]] | None,
        *,
        strict: bool,
        scopes: Sequence[ExposureScope] = (),
        earlier_snapshot: Mapping[str, Any] | None = None,
    ) -> tuple[RevokeOutcome, T | None]:
        with gc_paused():
            return await self._revoke_paused(spec, persist, strict=strict, scopes=scopes,
                                             earlier_snapshot=earlier_snapshot)

    async def _revoke_paused(
        self,
        spec: DatasetSpec,
        persist: Callable[[dict[str, Any]], Awaitable[T]] | None,
        *,
        strict: bool,
        scopes: Sequence[ExposureScope],
        earlier_snapshot: Mapping[str, Any] | None,
    ) -> tuple[RevokeOutcome, T | None]:
        executed = 0
        passes = 0
        regranted: list[str] = []
        stored: T | None = None
        async with self._connect(f"revoke {spec.name}") as conn:
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
                            await self.execute(conn, st)
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
            lost = _lost_login_roles(captured, kept)
            if earlier_snapshot is not None:
                lost |= _lost_login_roles(state_from_snapshot(earlier_snapshot)[0], kept)
            for scope in scopes:
                lost |= _lost_from_scope(scope, state, kept)
            terminated = await _terminate_sessions(conn, lost) if self._terminate else 0
        outcome = RevokeOutcome(
            dataset=spec.name,
            statements=executed,
            passes=passes,
            sessions_terminated=terminated,
            break_glass_regranted=regranted,
            captured_at=captured_at,
            access_gone_at=datetime.now(UTC),
        )
        self.last_revoke = outcome
        log.info("revoked", **outcome.model_dump())
        return outcome, stored

    async def execute(self, conn: AsyncConnection[Any], statement: Statement) -> None:
        """Run one planned statement on the revoke's connection (inside its transaction). The seam
        through which fault tests stop a revoke part-way."""
        await _run(conn, statement)

    async def planned_revoke(self, spec: DatasetSpec) -> list[tuple[str | None, str]]:
        """The statements a revoke would run now (as role, SQL text), without running them."""
        async with self._connect(f"plan revoke of {spec.name}") as conn:
            state = await load_state(conn, spec, strict=False)
            break_glass = [r for r in spec.break_glass_roles if r in state.roles]
            return [(st.as_role, st.query.as_string(conn)) for st in plan_revoke(state, break_glass)]

    # -- verify / check ----------------------------------------------------------------------------

    async def verify(self, spec: DatasetSpec, scope: ExposureScope) -> list[RoleAccess]:
        """Residual access, asked of the database three ways: the catalogs (recomputed paths), the
        privilege functions for every role the scope recorded, and a real SELECT as each former login
        reader; plus a table created now in the schema. Break-glass roles and the operator are not
        residual; superusers and owners are, by name and path."""
        return await self.verify_facts(spec, ScopeFacts.of(scope))

    async def verify_facts(self, spec: DatasetSpec, facts: ScopeFacts) -> list[RoleAccess]:
        """``verify``, given what it needs of the scope (``scope.ScopeFacts``)."""
        with gc_paused():
            async with self._connect(f"verify {spec.name}") as conn:
                async with conn.transaction(force_rollback=True):
                    state = await load_state(conn, spec, strict=False)
                    return await self._residual(conn, spec, facts, state)

    async def check(self, spec: DatasetSpec, scope: ExposureScope) -> DatasetCheck:
        """Contained unless some residual access is revocable or was not in the recorded scope."""
        residual = await self.verify(spec, scope)
        recorded = {(a.role, a.object, a.path) for a in scope.access}
        accepted = [
            a for a in residual if a.path in UNREVOCABLE_PATHS and (a.role, a.object, a.path) in recorded
        ]
        accepted_keys = {id(a) for a in accepted}
        violations = [a for a in residual if id(a) not in accepted_keys]
        return DatasetCheck(
            dataset=spec.name,
            contained=not violations,
            violations=[a.describe() for a in violations][:MAX_LISTED],
            violation_count=len(violations),
            accepted=[a.describe() for a in accepted][:MAX_LISTED],
        )

    async def _residual(
        self, conn: AsyncConnection[Any], spec: DatasetSpec, facts: ScopeFacts, state: State
    ) -> list[RoleAccess]:
        kept = kept_roles(state, spec.break_glass_roles)
        objs = {o.qname: o for o in state.objects}
        current = compute_access(state)
        explain: dict[tuple[str, str], RoleAccess] = {}
        for a in current:
            key = (a.role, a.object)
            if key not in explain or PATH_PRIORITY[a.path] < PATH_PRIORITY[explain[key].path]:
                explain[key] = a

        def expected(a: RoleAccess) -> bool:
            return a.role in kept or (a.via is not None and a.via in spec.break_glass_roles)

        residual: dict[tuple[str, str, AccessPath, str | None], RoleAccess] = {}

        def add(a: RoleAccess) -> None:
            if not expected(a):
                residual.setdefault((a.role, a.object, a.path, a.via), a)

        def classify(role: str, obj: str) -> RoleAccess:
            if (role, obj) in explain:
                return explain[(role, obj)]
            rec = state.roles.get(role)
            path = AccessPath.SUPERUSER if rec and rec.superuser else AccessPath.OTHER
            return RoleAccess(role=role, object=obj, path=path, login=bool(rec and rec.login))

        # 1. Paths the catalogs still show (schema objects; future-table defaults outside the schema's
        # own defaults cannot be revoked per schema and show here too).
        for a in current:
            if a.path is AccessPath.DEFAULT_PRIVILEGES and not a.object.startswith("*."):
                continue  # schema defaults are checked below by creating a table
            add(a)

        # 2. The privilege functions, for every (role, object) the scope recorded and PUBLIC.
        present = set(state.roles) - kept
        asked = {o: (facts.roles.get(o, set()) & present) | ({PUBLIC} - kept) for o in objs}
        for role, obj in await _still_privileged(conn, state, asked, objs):
            add(classify(role, obj))
        if state.whole_schema:
            schema_roles = sorted(
                facts.schema_grantees - kept - {state.schema_owner}
            )
            schema_roles = [r for r in schema_roles if r == PUBLIC or r in state.roles]
            cur = await conn.execute(
                "SELECT r FROM unnest(%s::text[]) r "
                "WHERE has_schema_privilege(CASE WHEN r = 'PUBLIC' THEN 'public' ELSE r END, "
                "%s::oid, 'USAGE')",
                (schema_roles, state.schema_oid),
            )
            for (role,) in await cur.fetchall():
                rec = state.roles.get(role)
                if rec is None or not rec.superuser:
                    add(
                        RoleAccess(
                            role=role,
                            object=state.schema,
                            path=AccessPath.DIRECT if role != PUBLIC else AccessPath.PUBLIC,
                            via="schema usage",
                            login=bool(rec and rec.login),
                        )
                    )

        # 3. Real reads as former login readers (and a few login roles with no recorded access, which
        # stand for PUBLIC).
        former = set().union(*(facts.logins.get(o, set()) for o in objs)) | {a.role for a in current if a.login}
        readers = sorted(r for r in former if r in state.roles and r not in kept and state.roles[r].login)
        reading = set(readers)
        witnesses = [
            r.name
            for r in sorted(state.roles.values(), key=lambda r: r.name)
            if r.login
            and not r.superuser
            and r.name not in kept
            and r.name not in reading
            and not r.name.startswith("pg_")
        ][:WITNESS_ROLES]
        relations = [o for o in state.objects if o.kind in RELATION_KINDS]
        for role, relation in await self._real_reads(conn, readers + witnesses, relations):
            add(classify(role, relation.qname))

        # 4. A table created now must not be readable by anyone who could read the dataset.
        for a in await _future_table_access(conn, state, kept):
            add(a)

        out = sorted(residual.values(), key=lambda a: (a.object, a.role, PATH_PRIORITY[a.path]))
        log.info("verified", dataset=spec.name, residual=len(out))
        return out

    async def _real_reads(
        self, conn: AsyncConnection[Any], roles: list[str], relations: list[Obj]
    ) -> list[tuple[str, Obj]]:
        if not roles or not relations:
            return []
        cur = await conn.execute(
            "SELECT r FROM unnest(%s::text[]) r WHERE pg_has_role(current_user, r, 'SET')", (roles,)
        )
        settable = [r for (r,) in await cur.fetchall()]
        skipped = set(roles) - set(settable)
        if skipped:
            log.warning("cannot SET ROLE for a real read; catalog answer only", roles=sorted(skipped)[:20])
        pairs = _probe_pairs(settable, relations, self._read_probe_limit)
        if not pairs:
            return []
        await conn.execute(PROBE_FUNCTION)
        cur = await conn.execute(
            "SELECT role, schema, rel, state FROM pg_temp.pausegate_probe(%s, %s, %s)",
            ([r for r, _ in pairs], [o.schema for _, o in pairs], [o.name for _, o in pairs]),
        )
        by_name = {(o.schema, o.name): o for o in relations}
        out: list[tuple[str, Obj]] = []
        for role, schema, rel, state in await cur.fetchall():
            if state == "read":
                out.append((role, by_name[(schema, rel)]))
            elif state != "42501":
                log.warning("real read failed for another reason", role=role, relation=rel, sqlstate=state)
        return out

    # -- restore -----------------------------------------------------------------------------------

    async def check_plan(self, spec: DatasetSpec, grants: list[GrantSpec]) -> list[str]:
        """Why the planned grants could not be applied now (roles, tables and columns that do not exist,
        privileges that do not apply); empty when they could. Changes nothing."""
        async with self._connect(f"check plan for {spec.name}") as conn:
            state = await load_state(conn, spec, strict=True)
            tables = {o.name: o for o in state.objects if o.schema == spec.schema_name and o.kind in RELATION_KINDS}
            columns = await _columns(conn, [o.oid for o in tables.values()])
            return _plan_problems(spec, grants, state, tables, columns)

    async def restore(self, spec: DatasetSpec, grants: list[GrantSpec]) -> RestoreResult:
        """Grant exactly the planned privileges (plus the schema USAGE, and sequence USAGE for INSERT,
        they need), then check each through the database. Granting again is a no-op."""
        async with self._connect(f"restore {spec.name}") as conn:
            async with conn.transaction():
                state = await load_state(conn, spec, strict=True)
                tables = {
                    o.name: o
                    for o in state.objects
                    if o.schema == spec.schema_name and o.kind in RELATION_KINDS
                }
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


# -- helpers -----------------------------------------------------------------------------------------


async def _run(conn: AsyncConnection[Any], st: Statement) -> None:
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


def _lost_from_scope(scope: ExposureScope, state: State, kept: set[str]) -> set[str]:
    """Login roles that lost access, by a recorded scope: every role with a revocable path (every
    login role when PUBLIC had one), less those no REVOKE reaches."""
    unrevocable = {a.role for a in scope.access if a.path in UNREVOCABLE_PATHS}
    lost = {a.role for a in scope.access if a.path not in UNREVOCABLE_PATHS}
    return _ordinary_logins(lost, unrevocable, state, kept)


def _lost_login_roles(state: State, kept: set[str]) -> set[str]:
    """``_lost_from_scope`` of the scope ``state`` derives, without deriving it: the same holders and
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


async def _terminate_sessions(conn: AsyncConnection[Any], lost: set[str]) -> int:
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


async def _privileged(conn: AsyncConnection[Any], pairs: list[tuple[str, Obj]]) -> list[tuple[str, str]]:
    """The (role, object) pairs where the role still holds any privilege on the object."""
    if not pairs:
        return []
    fn_for = {"sequence": "seq", "function": "fn"}
    cur = await conn.execute(
        """
        SELECT r, o, k FROM unnest(%s::text[], %s::oid[], %s::text[]) AS p(r, o, k)
        WHERE CASE k
          WHEN 'seq' THEN has_sequence_privilege(r, o, 'USAGE, SELECT, UPDATE')
          WHEN 'fn' THEN has_function_privilege(r, o, 'EXECUTE')
          ELSE has_table_privilege(r, o, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               OR has_any_column_privilege(r, o, 'SELECT, INSERT, UPDATE, REFERENCES')
        END
        """,
        (
            # The privilege functions spell PUBLIC in lower case.
            ["public" if r == PUBLIC else r for r, _ in pairs],
            [o.oid for _, o in pairs],
            [fn_for.get(o.kind, "rel") for _, o in pairs],
        ),
    )
    by_oid = {o.oid: o for _, o in pairs}
    return [(PUBLIC if r == "public" else r, by_oid[o].qname) for r, o, _ in await cur.fetchall()]


def _probe_pairs(roles: list[str], relations: list[Obj], limit: int) -> list[tuple[str, Obj]]:
    """Every (role, relation) pair when that fits the limit; otherwise a sample in which every
    relation is probed, and every role too while the roles fit the limit (beyond it, a random
    choice of them: the catalog answer has already asked about every role)."""
    if not roles or not relations:
        return []
    if len(roles) * len(relations) <= limit:
        return [(r, o) for r in roles for o in relations]
    if len(roles) + len(relations) > limit:
        roles = sorted(random.SystemRandom().sample(roles, max(1, limit - len(relations))))
    pairs: dict[tuple[str, int], tuple[str, Obj]] = {}
    n = max(len(roles), len(relations))
    for i in range(n):
        r, o = roles[i % len(roles)], relations[i % len(relations)]
        pairs[(r, o.oid)] = (r, o)
    for r in roles:
        if len(pairs) >= limit:
            break
        for o in relations:
            if len(pairs) >= limit:
                break
            pairs.setdefault((r, o.oid), (r, o))
    return list(pairs.values())


# Up to this many (role, object) pairs are each put to the privilege functions; above it, every role
# is put to pg_has_role against the grantees left on the objects, and the pairs that may still hold a
# privilege, with a random sample of the others, go to the privilege functions.
EXACT_PAIRS = 20_000
SAMPLED_PAIRS = 2_000
# Above this many pg_has_role calls (roles x remaining grantees: many grants survived), asking every
# pair is the cheaper question.
MEMBERSHIP_CALLS = 5_000_000

HOLDERS_Q = """
SELECT c.oid, a.grantee FROM pg_class c,
     aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                              c.relowner))) a
WHERE c.oid = ANY(%(rels)s::oid[])
  AND a.privilege_type = ANY(CASE WHEN c.relkind = 'S' THEN %(seq)s::text[] ELSE %(rel)s::text[] END)
UNION
SELECT at.attrelid, a.grantee FROM pg_attribute at, aclexplode(at.attacl) a
WHERE at.attrelid = ANY(%(rels)s::oid[]) AND at.attnum > 0 AND NOT at.attisdropped AND at.attacl IS NOT NULL
  AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
UNION
SELECT p.oid, a.grantee FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.oid = ANY(%(funcs)s::oid[]) AND a.privilege_type = 'EXECUTE'
"""


async def _still_privileged(
    conn: AsyncConnection[Any], state: State, asked: dict[str, set[str]], objs: dict[str, Obj]
) -> list[tuple[str, str]]:
    """The (role, object) pairs, of the roles ``asked`` about each object, where the role still holds
    any privilege on the object.

    Few pairs: each is asked of the privilege functions. Many (a company's scope): each object's
    remaining grantees are read from its ACL (the holders the privilege functions consult), every
    asked role is put to ``pg_has_role`` against each of them, and the pairs that may still hold a
    privilege (with superusers', and the predefined read/write-all roles' members') go to the
    privilege functions for the final answer, with a random sample of the rest as a cross-check.
    """
    total = sum(len(roles) for roles in asked.values())
    if total <= EXACT_PAIRS:
        return await _privileged(conn, [(r, objs[o]) for o, roles in sorted(asked.items()) for r in sorted(roles)])
    by_oid = {o.oid: o for o in objs.values()}
    rels = [o.oid for o in objs.values() if o.kind != "function"]
    funcs = [o.oid for o in objs.values() if o.kind == "function"]
    cur = await conn.execute(
        HOLDERS_Q, {"rels": rels, "funcs": funcs, "seq": list(SEQUENCE_PRIVILEGES), "rel": list(TABLE_PRIVILEGES)}
    )
    holders: dict[str, set[int]] = defaultdict(set)  # object -> grantee oids (0: PUBLIC)
    for oid, grantee in await cur.fetchall():
        holders[by_oid[oid].qname].add(grantee)
    cur = await conn.execute(
        "SELECT oid FROM pg_roles WHERE rolname = ANY(%s::text[])", ([READ_ALL, WRITE_ALL],)
    )
    predefined = [oid for (oid,) in await cur.fetchall()]
    for o in objs.values():
        if o.kind != "function":
            holders[o.qname].update(predefined)
    # A grantee no role is a member of passes its privileges to itself alone (and superusers pass
    # every check): only grantees with members are worth a pg_has_role per asked role.
    cur = await conn.execute(
        "SELECT r.oid, r.rolname, EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid) "
        "FROM pg_roles r WHERE r.oid = ANY(%s::oid[])",
        (sorted({g for gs in holders.values() for g in gs if g != 0}),),
    )
    grantee_rows = await cur.fetchall()
    grantees = sorted(oid for oid, _, has_members in grantee_rows if has_members)
    asked_roles = set().union(*asked.values()) - {PUBLIC}
    roles = sorted(asked_roles)
    if len(roles) * len(grantees) > MEMBERSHIP_CALLS:
        return await _privileged(conn, [(r, objs[o]) for o, rs in sorted(asked.items()) for r in sorted(rs)])
    has: dict[str, set[int]] = defaultdict(set)
    for oid, name, _ in grantee_rows:
        if name in asked_roles:
            has[name].add(oid)
    if grantees:
        # Sorted by role, so the server's cache of one role's memberships serves each run of calls.
        cur = await conn.execute(
            "SELECT r, g FROM unnest(%s::text[]) r, unnest(%s::oid[]) g WHERE pg_has_role(r, g, 'USAGE')",
            (roles, grantees),
        )
        for r, g in await cur.fetchall():
            has[r].add(g)
    superusers = {r.name for r in state.roles.values() if r.superuser}
    candidates: list[tuple[str, str]] = []
    rest: list[tuple[str, list[str]]] = []  # (object, roles that hold none of its grantees)
    for name, asked_roles in sorted(asked.items()):
        if 0 in holders[name]:  # PUBLIC holds a privilege: every role does
            may = set(asked_roles)
        else:
            may = asked_roles & (superusers | {r for r, gs in has.items() if not gs.isdisjoint(holders[name])})
        candidates += [(r, name) for r in sorted(may)]
        if len(may) < len(asked_roles):
            rest.append((name, list(asked_roles - may)))
    sample = _sample_pairs(rest, SAMPLED_PAIRS)
    found = await _privileged(conn, [(r, objs[o]) for r, o in candidates + sample])
    missed = sorted(set(found) - set(candidates))
    if missed:
        # The privilege functions know a path the ACLs did not show: ask about every pair.
        log.error("privilege functions disagree with the ACLs; asking every pair", pairs=missed[:20])
        return await _privileged(conn, [(r, objs[o]) for o, rs in sorted(asked.items()) for r in sorted(rs)])
    return found


def _sample_pairs(groups: list[tuple[str, list[str]]], size: int) -> list[tuple[str, str]]:
    """A uniform random sample of ``size`` (role, object) pairs from (object, roles) groups."""
    total = sum(len(roles) for _, roles in groups)
    picks = sorted(random.SystemRandom().sample(range(total), min(size, total)))
    out: list[tuple[str, str]] = []
    start = 0
    it = iter(picks)
    pick = next(it, None)
    for obj, roles in groups:
        while pick is not None and pick < start + len(roles):
            out.append((roles[pick - start], obj))
            pick = next(it, None)
        start += len(roles)
    return out


async def _future_table_access(conn: AsyncConnection[Any], state: State, kept: set[str]) -> list[RoleAccess]:
    """Create a table in the schema as each role whose default privileges apply there (inside the
    caller's rolled-back transaction) and ask who could read it."""
    creators = {state.operator, state.schema_owner} | {d.creator for d in state.defacls}
    cur = await conn.execute(
        "SELECT r FROM unnest(%s::text[]) r WHERE pg_has_role(current_user, r, 'SET') "
        "AND has_schema_privilege(r, %s::oid, 'CREATE')",
        (sorted(creators), state.schema_oid),
    )
    creators = {r for (r,) in await cur.fetchall()}
    # Every role, not only former readers: a default privilege added after containment names anyone.
    former = [
        PUBLIC,
        *sorted(
            r.name
            for r in state.roles.values()
            if not r.superuser and r.name not in kept and r.name not in (READ_ALL, WRITE_ALL)
        ),
    ]
    out: list[RoleAccess] = []
    for creator in sorted(creators):
        name = f"pausegate_probe_{secrets.token_hex(6)}"
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(creator)))
        await conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(state.schema, name)))
        await conn.execute("RESET ROLE")
        cur = await conn.execute(
            sql.SQL(
                # Members of the creator own the new table: that is the owner path, reported elsewhere.
                "SELECT r FROM unnest(%s::text[]) r WHERE r <> %s "
                "AND CASE WHEN r = 'PUBLIC' THEN true ELSE NOT pg_has_role(r, %s, 'USAGE') END "
                "AND has_table_privilege(CASE WHEN r = 'PUBLIC' THEN 'public' ELSE r END, "
                "(SELECT c.oid FROM pg_class c WHERE c.relnamespace = %s::oid AND c.relname = %s), "
                "'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
            ),
            (former, creator, creator, state.schema_oid, name),
        )
        for (role,) in await cur.fetchall():
            rec = state.roles.get(role)
            out.append(
                RoleAccess(
                    role=role,
                    object=f"{state.schema}.<new table of {creator}>",
                    path=AccessPath.PUBLIC if role == PUBLIC else AccessPath.DEFAULT_PRIVILEGES,
                    via=creator,
                    login=bool(rec and rec.login),
                )
            )
    return out


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


COLUMN_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "REFERENCES"})


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
