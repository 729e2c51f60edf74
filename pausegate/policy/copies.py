"""Resume decides each copy of the data: the rule behind the plan check.

A plan may only be proposed once it says, for every copy the pause found still holding the data (by
its id in the copies document), whether it is dropped, purged with one of the plan's data actions, or
kept quarantined. Leaving a copy as it is, is the commander's alone and needs a reason: approvers
see it as a risk (``risks``).
"""

from __future__ import annotations

from pausegate.errors import ActionRefused
from pausegate.models.copies import CopiesSummary
from pausegate.models.data_actions import PurgeOlderThan, PurgeSubjects
from pausegate.models.people import Actor
from pausegate.models.plan import CopyDecision, ResumePlan
from pausegate.models.runbook import Runbook
from pausegate.policy.authority import names, require_commander
from pausegate.policy.review import effective

# Row rules a copy can be purged by: they select rows by a column, which a copy made with SELECT * keeps.
PURGE_KINDS = (PurgeSubjects, PurgeOlderThan)
LISTED = 10


def undecided(copies: CopiesSummary | None, plan: ResumePlan) -> list[str]:
    """Ids of the copies the plan leaves undecided."""
    if copies is None:
        return []
    decided = {d.copy_id for d in plan.copies}
    return [c for c in copies.undecided if c not in decided]


def check_plan_copies(runbook: Runbook, copies: CopiesSummary | None, plan: ResumePlan, proposer: Actor) -> None:
    """Refuse a plan that leaves a copy undecided, names a copy the pause did not find, purges with
    anything but a row rule of its own, or waives a copy without being the commander's."""
    known = set(copies.undecided) if copies is not None else set()
    unknown = [d.copy_id for d in plan.copies if d.copy_id not in known]
    if unknown:
        raise ActionRefused("invalid_plan", f"copies {names(unknown[:LISTED])} are not copies this pause must decide")
    problems = [_purge_problem(d, plan) for d in plan.copies if d.action == "purge"]
    if any(problems):
        raise ActionRefused("invalid_plan", "; ".join(p for p in problems if p))
    if any(d.action == "waive" for d in plan.copies):
        require_commander(runbook, effective(runbook, proposer), "waiving a copy of the data")
    left = undecided(copies, plan)
    if left:
        raise ActionRefused(
            "copies_undecided",
            f"{len(left)} copies of the data are undecided ({names(left[:LISTED])}): the plan must drop, purge or "
            "keep each quarantined, or the commander waive it with a reason")


def _purge_problem(decision: CopyDecision, plan: ResumePlan) -> str | None:
    index = decision.data_action
    if index is None or index >= len(plan.data_actions):
        return f"copy {decision.copy_id}: the plan has no data action {index}"
    if not isinstance(plan.data_actions[index], PURGE_KINDS):
        return f"copy {decision.copy_id}: data action {index} deletes no rows (purge_subjects or purge_older_than)"
    return None


def risks(plan: ResumePlan) -> list[str]:
    """What approvers must see as risks: each copy left as it is, with the commander's reason."""
    return [f"copy {d.copy_id} left as it is (waived): {d.reason}" for d in plan.copies if d.action == "waive"]
