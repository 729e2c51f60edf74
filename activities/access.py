"""Revoking, checking and restoring dataset access."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.interfaces import DatasetAccess
from pausegate.connectors.postgres.gcpause import gc_paused
from pausegate.connectors.scope_facts import DerivedScope
from pausegate.evidence.interface import EvidenceStore
from pausegate.evidence.layout import catalog_key, plan_diff_key, scope_key
from pausegate.models.access import (
    UNREVOCABLE_PATHS,
    DatasetCheck,
    DatasetContainment,
    DatasetRevoked,
    ExposureScope,
    RestoreResult,
    RoleAccess,
)
from pausegate.models.evidence import EvidenceRef
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.plan import PlanDiffSummary
from pausegate.models.runbook import DatasetSpec
from pausegate.models.steps import (
    CheckDatasetInput,
    CheckPlanInput,
    ContainDatasetInput,
    DiffPlanInput,
    RestoreGrantsInput,
    VerifyDatasetInput,
)
from pausegate.policy.access_plan import plan_diff


def _describe(access: RoleAccess) -> str:
    return f"{access.role}:{access.object}:{access.path.value}" + (f"(via {access.via})" if access.via else "")


class AccessActivities:
    """Activities over dataset access, chosen by connection name."""

    def __init__(self, access: Callable[[str], DatasetAccess], store: EvidenceStore) -> None:
        self._access = access
        self._store = store

    @activity.defn(name="revoke_dataset")
    async def revoke_dataset(self, input: ContainDatasetInput) -> DatasetRevoked:
        """Cut access now: read the raw catalog, store it as evidence and revoke every path but
        break-glass, in one transaction that commits only once the catalog is stored. Deriving the
        exposure scope and verifying come after (``verify_dataset``), off the path that cuts access."""
        async with running() as progress:
            spec = input.dataset
            access = self._access(spec.connection)
            key = catalog_key(input.pause_key, spec.name)
            # What an earlier attempt captured stays the record: after its revoke committed, a new
            # capture would show less than was open (signed for this key, like the scope below).
            earlier = await asyncio.to_thread(self._read_if_stored, key)

            async def persist(document: dict[str, Any]) -> EvidenceRef:
                return await asyncio.to_thread(self._store.put_json, key, earlier if earlier is not None else document)

            outcome, snapshot = await access.revoke_capturing(spec, persist, earlier_snapshot=earlier)
            progress.report("revoked")
            assert outcome.captured_at is not None and outcome.access_gone_at is not None
            return DatasetRevoked(
                dataset=spec.name,
                snapshot=snapshot,
                revoked=outcome.statements,
                passes=outcome.passes,
                sessions_terminated=outcome.sessions_terminated,
                captured_at=outcome.captured_at,
                access_gone_at=outcome.access_gone_at,
            )

    def _read_if_stored(self, key: str) -> Any:
        return self._store.read_json(key) if self._store.get(key) is not None else None

    @activity.defn(name="verify_dataset")
    async def verify_dataset(self, input: VerifyDatasetInput) -> DatasetContainment:
        """Derive the exposure scope from the catalog the revoke captured, record it, and verify
        through the database, for every role that had access, that the access is gone."""
        # The collector paused throughout: a company's snapshot, scope and facts are millions of
        # acyclic objects, and a full pass over them between the steps cost more than a step.
        with gc_paused():
            return await self._verify_dataset(input)

    async def _verify_dataset(self, input: VerifyDatasetInput) -> DatasetContainment:
        async with running() as progress:
            spec = input.dataset
            access = self._access(spec.connection)
            revoked = input.revoked
            # The revoke ran on the urgent worker: the snapshot is read back as it stored it, by its digest.
            snapshot = await asyncio.to_thread(
                self._store.read_json, catalog_key(input.pause_key, spec.name), revoked.snapshot.sha256
            )
            derived = await asyncio.to_thread(access.scope_from_snapshot, spec, snapshot)
            # The scope document (about a million paths for a company) is built first, on its own; its
            # signed store, which hardly holds the interpreter lock (hashing, signing, writing), then
            # runs while the database is asked. Built beside the verification, both waited for the
            # lock and the store came last.
            document = await asyncio.to_thread(self._derived_document, input.pause_key, spec, derived)
            recording = asyncio.create_task(asyncio.to_thread(self._record_document, input.pause_key, spec, document))
            try:
                facts = await asyncio.to_thread(derived.facts)
                residual = await access.verify_facts(spec, facts)
            finally:
                ref = await recording
            progress.report("verified")
            blocking = [r for r in residual if r.path not in UNREVOCABLE_PATHS]
            return DatasetContainment(
                dataset=spec.name,
                scope=ref,
                grants_recorded=facts.grants,
                roles_with_access=facts.roles_with_access,
                revoked=revoked.revoked,
                sessions_terminated=revoked.sessions_terminated,
                verified=not blocking,
                residual=[_describe(r) for r in residual][:MAX_LISTED_IDS],
                residual_count=len(residual),
                snapshot=revoked.snapshot,
                access_gone_at=revoked.access_gone_at,
                access_verified_at=datetime.now(UTC) if not blocking else None,
            )

    def _derived_document(self, pause_key: str, spec: DatasetSpec, derived: DerivedScope) -> EvidenceRef | bytes:
        """The scope of the captured catalog as its document, or its ref if it is recorded already (a
        retry finds it recorded: signed for this key, written by an earlier attempt of this activity,
        and derived from the same capture): it is recorded once per pause."""
        if (stored := self._store.get(scope_key(pause_key, spec.name))) is not None:
            return stored
        return derived.document()

    def _record_document(self, pause_key: str, spec: DatasetSpec, document: EvidenceRef | bytes) -> EvidenceRef:
        if isinstance(document, EvidenceRef):
            return document
        return self._store.put_canonical(scope_key(pause_key, spec.name), document)

    @activity.defn(name="check_dataset")
    async def check_dataset(self, input: CheckDatasetInput) -> DatasetCheck:
        """Whether the dataset is still contained, judged against the recorded scope."""
        async with running():
            spec = input.dataset
            access = self._access(spec.connection)
            scope = ExposureScope.model_validate(await asyncio.to_thread(
                self._store.read_json, scope_key(input.pause_key, spec.name), expected_sha256=input.scope_sha256
            ))
            return await access.check(spec, scope)

    @activity.defn(name="diff_plan")
    async def diff_plan(self, input: DiffPlanInput) -> PlanDiffSummary:
        """Who loses, keeps and gains access under a plan, against the recorded scope (full diff: evidence)."""
        async with running():
            key = scope_key(input.pause_key, input.dataset.name)
            scope = ExposureScope.model_validate(
                await asyncio.to_thread(self._store.read_json, key, expected_sha256=input.scope_sha256))
            diff = plan_diff(scope, input.grants)
            ref = await asyncio.to_thread(
                self._store.put_json,
                plan_diff_key(input.pause_key, input.plan_digest, input.dataset.name),
                diff.model_dump(mode="json"),
            )
            return PlanDiffSummary(
                dataset=input.dataset.name,
                loses=len(diff.loses), keeps=len(diff.keeps), gains=len(diff.gains),
                loses_roles=sorted(diff.loses)[:MAX_LISTED_IDS], keeps_roles=sorted(diff.keeps)[:MAX_LISTED_IDS],
                gains_roles=sorted(diff.gains)[:MAX_LISTED_IDS], diff=ref,
            )

    @activity.defn(name="check_plan")
    async def check_plan(self, input: CheckPlanInput) -> list[str]:
        """Why a plan's grants could not be applied on one dataset now (empty when they could)."""
        async with running():
            return await self._access(input.dataset.connection).check_plan(input.dataset, list(input.grants))

    @activity.defn(name="restore_grants")
    async def restore_grants(self, input: RestoreGrantsInput) -> RestoreResult:
        """Apply exactly the approved plan's grants for one dataset."""
        async with running():
            access = self._access(input.dataset.connection)
            return await access.restore(input.dataset, list(input.grants))
