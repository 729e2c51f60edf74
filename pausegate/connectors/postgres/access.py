"""Dataset access in PostgreSQL: record who can reach a dataset, revoke it, prove it, restore a plan.

``PostgresAccess`` is the ``DatasetAccess`` connector; it opens the administrative connection
(``admin``) and hands it to the module that holds each idea: ``revoke``, ``verify``, ``restore``.
Every identifier reaches SQL through ``psycopg.sql.Identifier``; catalog names are never formatted
into query text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.admin import admin_connection
from pausegate.connectors.postgres.catalog import ReadPath, load_data_subjects, load_read_paths, load_state
from pausegate.connectors.postgres.gcpause import gc_paused
from pausegate.connectors.postgres.plan import Statement
from pausegate.connectors.postgres.restore import plan_problems_on, restore_on
from pausegate.connectors.postgres.revoke import derive_scope, planned_statements, revoke_on, run_statement
from pausegate.connectors.postgres.scope import derive, scope_document, scope_facts, scope_model
from pausegate.connectors.postgres.snapshot import state_from_snapshot
from pausegate.connectors.postgres.verify import containment_check, residual_access
from pausegate.connectors.scope_facts import DerivedScope, ScopeFacts
from pausegate.models.access import DatasetCheck, ExposureScope, GrantSpec, RestoreResult, RevokeOutcome, RoleAccess
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

T = TypeVar("T")


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

    @asynccontextmanager
    async def _connect(self, what: str) -> AsyncIterator[AsyncConnection[Any]]:
        async with admin_connection(
            self._dsn, what, lock_timeout_ms=self._lock_timeout_ms, connect_timeout_s=self._connect_timeout_s
        ) as conn:
            yield conn

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
            # The closures and holders both need, derived once (they run side by side after this).
            derived = derive(state)

        def facts() -> ScopeFacts:
            with gc_paused():
                return scope_facts(state, derived)

        return DerivedScope(facts=facts, document=lambda: scope_document(spec, state, captured_at, derived))

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
        async with self._connect(f"revoke {spec.name}") as conn:
            outcome, _ = await revoke_on(conn, spec, None, self.execute, strict=False, scopes=[scope],
                                         terminate=self._terminate)
        self.last_revoke = outcome
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
        async with self._connect(f"revoke {spec.name}") as conn:
            outcome, stored = await revoke_on(conn, spec, persist, self.execute, strict=True,
                                              earlier_snapshot=earlier_snapshot, terminate=self._terminate)
        self.last_revoke = outcome
        assert stored is not None  # persist ran and returned before the commit
        return outcome, stored

    async def execute(self, conn: AsyncConnection[Any], statement: Statement) -> None:
        """Run one planned statement on the revoke's connection (inside its transaction). The seam
        through which fault tests stop a revoke part-way."""
        await run_statement(conn, statement)

    async def planned_revoke(self, spec: DatasetSpec) -> list[tuple[str | None, str]]:
        """The statements a revoke would run now (as role, SQL text), without running them."""
        async with self._connect(f"plan revoke of {spec.name}") as conn:
            return await planned_statements(conn, spec)

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
                    return await residual_access(conn, spec, facts, state, read_probe_limit=self._read_probe_limit)

    async def check(self, spec: DatasetSpec, scope: ExposureScope) -> DatasetCheck:
        """Contained unless some residual access is revocable or was not in the recorded scope."""
        return containment_check(spec, scope, await self.verify(spec, scope))

    # -- restore -----------------------------------------------------------------------------------

    async def check_plan(self, spec: DatasetSpec, grants: list[GrantSpec]) -> list[str]:
        """Why the planned grants could not be applied now (roles, tables and columns that do not exist,
        privileges that do not apply); empty when they could. Changes nothing."""
        async with self._connect(f"check plan for {spec.name}") as conn:
            return await plan_problems_on(conn, spec, grants)

    async def restore(self, spec: DatasetSpec, grants: list[GrantSpec]) -> RestoreResult:
        """Grant exactly the planned privileges (plus the schema USAGE, and sequence USAGE for INSERT,
        they need), then check each through the database. Granting again is a no-op."""
        async with self._connect(f"restore {spec.name}") as conn:
            return await restore_on(conn, spec, grants)
