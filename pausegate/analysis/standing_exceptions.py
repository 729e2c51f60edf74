"""The runbook's static break-glass roles as what they are: standing exceptions to containment, each
with the reads it made in the exposure window (from who saw what, as the pause derived it).

One rule, two sources of the roles: the runbook (the API) or the exposure scopes the pause recorded
(the report, from evidence alone)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.models.access import ExposureScope
from pausegate.models.break_glass import StandingException
from pausegate.models.runbook import Runbook
from pausegate.models.state import PauseState


def standing_exceptions(roles: Mapping[str, Sequence[str]], report: WhoSawWhat | None) -> list[StandingException]:
    """Each dataset's static break-glass roles, with their successful and refused reads of it."""
    out: list[StandingException] = []
    for dataset, names in roles.items():
        for role in names:
            if report is None:
                out.append(StandingException(dataset=dataset, role=role, reads=None))
                continue
            entries = [e for e in report.for_user(role) if e.dataset in (None, dataset)]
            out.append(StandingException(dataset=dataset, role=role, reads=sum(e.reads for e in entries),
                                         failed=sum(e.failed for e in entries),
                                         objects=sorted({e.object for e in entries if e.reads})))
    return out


def runbook_roles(runbook: Runbook) -> dict[str, list[str]]:
    return {d.name: list(d.break_glass_roles) for d in runbook.datasets}


async def recorded_exceptions(store: EvidenceStore, status: PauseState) -> list[StandingException]:
    """The standing exceptions as the pause's evidence says: the roles its recorded scopes kept, the reads
    its who-saw-what report derived (each document exactly the one the pause recorded)."""
    roles = {d.dataset: ExposureScope.model_validate(await read_recorded(store, d.scope)).break_glass_roles
             for d in status.containment.datasets}
    exposure = status.containment.exposure
    report = (WhoSawWhat.model_validate(await read_recorded(store, exposure.report))
              if exposure is not None else None)
    return standing_exceptions(roles, report)
