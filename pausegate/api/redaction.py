"""What a pause shows a caller who holds none of its review roles (``authority.review_roles``).

The leak was an insider problem: who had access, who keeps, loses or gains it, which paths no REVOKE
closed and who read the data are themselves sensitive. A caller without a review role of the
program sees the pause's state, containment as counts, who did what and when; every field that
names access, or may (people's free text, error texts), is emptied:

- ``exposure`` (per-dataset scope summaries and documents), ``who_saw_what``, ``copies``, ``report``;
- ``containment``: ``datasets[].residual``, ``exposure``, ``copies``, ``errors``, ``blocked[].reason``;
  ``progress.errors``;
- ``plan``: ``plan.grants`` (whom the plan gives access), the subjects a data action purges (each
  becomes ``redacted``: the count stays), ``copies[].reason``, ``diff[].loses_roles`` / ``keeps_roles`` /
  ``gains_roles`` and ``diff[].diff``; the counts stay;
- ``checklist[].evidence`` and ``note``; ``approvals[].comment``, ``decommission_approvals[].comment``,
  ``waivers[].reason``;
- ``timeline[].detail``, ``timeline_archived``.

Lists become empty, references null, texts empty; ``redacted`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from pausegate.models.data_actions import PurgeSubjects
from pausegate.models.pause import ItemStatus, PauseState, PlanRecord

REDACTED_SUBJECT = "redacted"


def redact_items(items: Iterable[ItemStatus]) -> list[ItemStatus]:
    """Checklist items without their evidence and notes."""
    return [item.model_copy(update={"evidence": [], "note": ""}) for item in items]


def _plan(record: PlanRecord | None) -> PlanRecord | None:
    if record is None:
        return None
    diff = [d.model_copy(update={"loses_roles": [], "keeps_roles": [], "gains_roles": [], "diff": None})
            for d in record.diff]
    # Whose rows a purge deletes names people: the count stays, the names go.
    actions = [
        a.model_copy(update={"subjects": [REDACTED_SUBJECT] * len(a.subjects)}) if isinstance(a, PurgeSubjects) else a
        for a in record.plan.data_actions
    ]
    # a waiver's reason is people's free text
    copies = [d.model_copy(update={"reason": ""}) for d in record.plan.copies]
    plan = record.plan.model_copy(update={"grants": [], "data_actions": actions, "copies": copies})
    return record.model_copy(update={"plan": plan, "diff": diff})


def redact_state(state: PauseState) -> PauseState:
    """A copy of ``state`` with everything that names access emptied (see the module's list)."""
    c = state.containment
    containment = c.model_copy(update={
        "datasets": [d.model_copy(update={"residual": []}) for d in c.datasets],
        "exposure": None,
        "copies": None,
        "errors": [],
        "blocked": [b.model_copy(update={"reason": ""}) for b in c.blocked],
    })
    return state.model_copy(update={
        "containment": containment,
        "plan": _plan(state.plan),
        "checklist": redact_items(state.checklist),
        "approvals": [a.model_copy(update={"comment": ""}) for a in state.approvals],
        "decommission_approvals": [a.model_copy(update={"comment": ""}) for a in state.decommission_approvals],
        "waivers": [w.model_copy(update={"reason": ""}) for w in state.waivers],
        "timeline": [e.model_copy(update={"detail": ""}) for e in state.timeline],
        "timeline_archived": [],
        "report": None,
    })
