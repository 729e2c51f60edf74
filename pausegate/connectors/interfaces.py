"""The capabilities activities need from the outside world, one protocol each.

Activities receive implementations of these; the worker chooses them from the
runbook's connection names and the deployment configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pausegate.connectors.scope_facts import DerivedScope, ScopeFacts
from pausegate.models.access import DatasetCheck, ExposureScope, GrantSpec, RestoreResult, RevokeOutcome, RoleAccess
from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.models.fleet import (
    AgentPage,
    AgentState,
    AuditRecord,
    BatchRequest,
    BatchResult,
    SwitchRequest,
    SwitchState,
)
from pausegate.models.runbook import DatasetSpec

T = TypeVar("T")


class FleetConnector(Protocol):
    """An agent fleet (fleet contract, see docs/fleet-openapi.json)."""

    async def list_agents(
        self, program: str, *, page_token: str | None = None, page_size: int = 1000, state: AgentState | None = None
    ) -> AgentPage: ...

    async def get_switch(self, program: str) -> SwitchState: ...

    async def set_switch(self, program: str, request: SwitchRequest) -> SwitchState: ...

    async def get_collection(self, program: str) -> CollectionProfile: ...

    async def set_collection(self, program: str, request: CollectionRequest) -> CollectionProfile: ...

    async def halt(self, program: str, request: BatchRequest) -> BatchResult: ...

    async def resume(self, program: str, request: BatchRequest) -> BatchResult: ...

    def audit_trail(self, program: str, start: datetime, end: datetime) -> AsyncIterator[AuditRecord]: ...


class DatasetAccess(Protocol):
    """Who can reach a dataset, and closing/reopening those paths (PostgreSQL: GRANT/REVOKE)."""

    async def record_scope(self, spec: DatasetSpec) -> ExposureScope:
        """Every current path of access to the dataset's objects (before anything is revoked)."""
        ...

    async def revoke(self, spec: DatasetSpec, scope: ExposureScope) -> RevokeOutcome:
        """Close every recorded path except break-glass roles; idempotent (0 statements when contained)."""
        ...

    async def revoke_capturing(
        self,
        spec: DatasetSpec,
        persist: Callable[[dict[str, Any]], Awaitable[T]],
        *,
        earlier_snapshot: Mapping[str, Any] | None = None,
    ) -> tuple[RevokeOutcome, T]:
        """Read the raw catalog and close every path but break-glass in one transaction, committing
        only after ``persist`` stored the catalog snapshot; the scope is derived from it later."""
        ...

    def derive_scope(self, spec: DatasetSpec, snapshot: Mapping[str, Any]) -> ExposureScope:
        """The exposure scope of a snapshot ``revoke_capturing`` persisted (pure; no database)."""
        ...

    def scope_from_snapshot(self, spec: DatasetSpec, snapshot: Mapping[str, Any]) -> DerivedScope:
        """What verification needs of the snapshot's scope at once, and the scope's document on demand."""
        ...

    async def verify_facts(self, spec: DatasetSpec, facts: ScopeFacts) -> list[RoleAccess]:
        """``verify`` given only what it needs of the recorded scope."""
        ...

    async def verify(self, spec: DatasetSpec, scope: ExposureScope) -> list[RoleAccess]:
        """Residual access: every (role, object, path) that can still read, asked of the database."""
        ...

    async def check(self, spec: DatasetSpec, scope: ExposureScope) -> DatasetCheck:
        """Whether the dataset is still contained (before resuming)."""
        ...

    async def check_plan(self, spec: DatasetSpec, grants: list[GrantSpec]) -> list[str]:
        """Why the planned grants could not be applied now; empty when they could. Changes nothing."""
        ...

    async def restore(self, spec: DatasetSpec, grants: list[GrantSpec]) -> RestoreResult:
        """Apply exactly the planned grants, verified through the database; idempotent."""
        ...


class AuditSource(Protocol):
    """Records of who touched the data, over a window, streamed."""

    def records(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]: ...


class Notifier(Protocol):
    """Somewhere people are told (Slack-compatible webhook)."""

    async def send(self, text: str, fields: Mapping[str, str]) -> None: ...
