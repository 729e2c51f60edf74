"""The runbook's static break-glass roles as what they are: standing exceptions to containment, each
with the reads it made in the exposure window (from who saw what, as the pause derived it)."""

from __future__ import annotations

from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.models.break_glass import StandingException
from pausegate.models.runbook import Runbook


def standing_exceptions(runbook: Runbook, report: WhoSawWhat | None) -> list[StandingException]:
    """Each dataset's static break-glass roles, with their successful and refused reads of it."""
    out: list[StandingException] = []
    for dataset in runbook.datasets:
        for role in dataset.break_glass_roles:
            if report is None:
                out.append(StandingException(dataset=dataset.name, role=role, reads=None))
                continue
            entries = [e for e in report.for_user(role) if e.dataset in (None, dataset.name)]
            out.append(StandingException(dataset=dataset.name, role=role, reads=sum(e.reads for e in entries),
                                         failed=sum(e.failed for e in entries),
                                         objects=sorted({e.object for e in entries if e.reads})))
    return out
