"""Revoking, checking and restoring dataset access."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.interfaces import DatasetAccess, EvidenceStore
from pausegate.evidence.layout import plan_diff_key, scope_key
from pausegate.models.access import (
    UNREVOCABLE_PATHS,
    DatasetCheck,
    DatasetContainment,
    ExposureScope,
    RestoreResult,
    RoleAccess,
)
from pausegate.models.evidence import EvidenceRef
from pausegate.models.pause import (
    MAX_LISTED_IDS,
    CheckDatasetInput,
    CheckPlanInput,
    ContainDatasetInput,
    DiffPlanInput,
    PlanDiffSummary,
    RestoreGrantsInput,
)
from pausegate.policy.access_plan import plan_diff
from pausegate.runbook.model import DatasetSpec


def _describe(access: RoleAccess) -> str:
    return f"{access.role}:{access.object}:{access.path.value}" + (f"(via {access.via})" if access.via else "")


class AccessActivities:
    """Activities over dataset access, chosen by connection name."""

    def __init__(self, access: Callable[[str], DatasetAccess], store: EvidenceStore) -> None:
        self._access = access
        self._store = store

    async def _scope(
        self, pause_key: str, spec: DatasetSpec, access: DatasetAccess
    ) -> tuple[ExposureScope, EvidenceRef]:
        """The scope recorded before anything was revoked, and its ref; recorded once per pause,
        reused on retry (a retry after revoking would record less than was exposed)."""
        key = scope_key(pause_key, spec.name)
        if await asyncio.to_thread(self._store.get, key) is not None:
            # Read before the workflow has recorded its digest, so no record vouches for it yet; the
            # signature does, because it names the key: a scope signed for this key was written by an
            # earlier attempt of this very activity (evidence keys are unique per pause and written
            # once). Another pause's scope copied here is refused (signed for its own key), and so is
            # one signed before signatures named their key (read_json wants a recorded digest for it).
            document = await asyncio.to_thread(self._store.read_json, key)
            # Storing it again yields the ref of exactly what was read (canonical JSON re-serialises
            # to the same bytes) and fails if the file changed since: the workflow records that.
            return ExposureScope.model_validate(document), await asyncio.to_thread(self._store.put_json, key, document)
        scope = await access.record_scope(spec)
        return scope, await asyncio.to_thread(self._store.put_json, key, scope.model_dump(mode="json"))

    @activity.defn(name="contain_dataset")
    async def contain_dataset(self, input: ContainDatasetInput) -> DatasetContainment:
        """Record the exposure scope, revoke every path but break-glass, and verify through the database."""
        async with running():
            spec = input.dataset
            access = self._access(spec.connection)
            scope, ref = await self._scope(input.pause_key, spec, access)
            activity.heartbeat("scope recorded")
            revoked = await access.revoke(spec, scope)
            activity.heartbeat("revoked")
            residual = await access.verify(spec, scope)
            # Superusers and owners cannot be revoked: reported by name, not retried forever.
            blocking = [r for r in residual if r.path not in UNREVOCABLE_PATHS]
            return DatasetContainment(
                dataset=spec.name,
                scope=ref,
                grants_recorded=len(scope.grants),
                roles_with_access=len({a.role for a in scope.access}),
                revoked=revoked.statements,
                sessions_terminated=revoked.sessions_terminated,
                verified=not blocking,
                residual=[_describe(r) for r in residual][:MAX_LISTED_IDS],
                residual_count=len(residual),
            )

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
