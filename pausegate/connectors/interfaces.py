"""The capabilities activities need from the outside world, one protocol each.

Activities receive implementations of these; the worker chooses them from the
runbook's connection names and the deployment configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pausegate.connectors.scope_facts import DerivedScope, ScopeFacts
from pausegate.models.access import DatasetCheck, ExposureScope, GrantSpec, RestoreResult, RevokeOutcome, RoleAccess
from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.models.evidence import EvidenceRef
from pausegate.models.fleet import (
    AgentPage,
    AgentState,
    AuditRecord,
    BatchRequest,
    BatchResult,
    SwitchRequest,
    SwitchState,
)
from pausegate.runbook.model import DatasetSpec

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


class EvidenceStore(Protocol):
    """Write-once storage for evidence; refs (uri + digest) are all that leave it."""

    def put_json(self, key: str, document: Mapping[str, Any] | list[Any]) -> EvidenceRef:
        """Store a JSON document under ``key`` once; the same content again returns the same ref,
        different content under an existing key raises ``EvidenceError``."""
        ...

    def put_canonical(self, key: str, data: bytes) -> EvidenceRef:
        """Store a JSON object already encoded as canonical JSON, once (as ``put_json``)."""
        ...

    def get(self, key: str) -> EvidenceRef | None:
        """The ref of what is stored under ``key``, if anything."""
        ...

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        """The JSON document stored under ``key``, signed for that key; with ``expected_sha256`` (the
        digest the pause recorded) exactly that one, else ``EvidenceError`` naming the key. ``version_id``
        (``EvidenceRef.version_id``) is the version to read where the store keeps versions."""
        ...

    def iter_bundle(
        self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The records of a sealed bundle, in order, each chunk checked against its digest."""
        ...

    @property
    def signing_key_sha256(self) -> str:
        """Fingerprint of the key the store signs with (the final report names it)."""
        ...

    async def seal(self, key: str, records: AsyncIterator[Mapping[str, Any]]) -> tuple[EvidenceRef, int]:
        """Stream records into a sealed bundle under ``key``; returns (ref to the manifest, chunk count).
        Sealing the same key again returns the existing bundle's ref."""
        ...


class AuditSource(Protocol):
    """Records of who touched the data, over a window, streamed."""

    def records(self, start: datetime, end: datetime) -> AsyncIterator[Mapping[str, Any]]: ...


class Notifier(Protocol):
    """Somewhere people are told (Slack-compatible webhook)."""

    async def send(self, text: str, fields: Mapping[str, str]) -> None: ...
