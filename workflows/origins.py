"""The containment step that finds when and how each access path opened (behind ``ORIGINS_PATCH``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.origins import OriginActivities
    from pausegate.models.origins import DeriveOriginsInput, OriginSummary
    from pausegate.models.runbook import Runbook
    from pausegate.models.state import PauseState
    from pausegate.policy.origins import origins_derived

T = TypeVar("T")


class Steps(Protocol):
    """What the step needs of the containment (``workflows.containment.Containment``)."""

    state: PauseState
    runbook: Runbook

    def _options(self, start_to_close: timedelta, *, attempts: int = 5,
                 urgent: bool = False) -> workflow.ActivityConfig: ...

    async def _until_done(self, what: str, step: Callable[[], Awaitable[T]], accept: Callable[[T], bool] = ...,
                          describe: Callable[[T], str] = ...) -> T | None: ...

ORIGINS_PATCH = "exposure-origins"
"""Patch id: from here on the exposure's paths are dated from the statement log before who saw what is
reported, and who saw what counts a read only while a path the reader had was open; runs recorded before
it (the stored histories) report the exposure over the runbook's look-back as they always did."""
ORIGINS_STEP = "containment.origins"


async def derive_origins(containment: Steps, window_start: datetime,
                         revoked_at: datetime) -> OriginSummary | None:
    """Each path's openings from the sealed statement log; None when there is no database log, or the
    commander waived the step (who saw what then counts over the whole window, as before)."""
    runbook, state = containment.runbook, containment.state
    sources = [a for a in runbook.audit_sources if a.kind == "postgres_log"]
    waived = set(state.containment.waived_steps)
    datasets = [d for d in runbook.datasets if f"containment.dataset.{d.name}" not in waived]
    if not sources or not datasets:
        return None
    names = {a.name for a in sources}
    bundles = [e.bundle.key for e in state.containment.evidence if e.source in names]
    summary: OriginSummary | None = await containment._until_done(
        ORIGINS_STEP,
        lambda: workflow.execute_activity_method(
            OriginActivities.derive_origins,
            DeriveOriginsInput(pause_key=state.evidence_key, program=runbook.program.id, datasets=datasets,
                               log_sources=sources, bundles=bundles, window_start=window_start,
                               window_end=revoked_at,
                               intended_roles=list(runbook.resume_policy.allowed_grantee_roles or ())),
            **containment._options(timedelta(hours=1)),
        ),
    )
    if summary is not None:
        origins_derived(state, summary, workflow.now())
    return summary
