"""Pure rules about a resume plan's conditions: what a plan may ask of this runbook, where its consent
and collected data types are found, and what a failed check of them does to the pause."""

from __future__ import annotations

from datetime import datetime

from pausegate.errors import ActionRefused
from pausegate.models.conditions import CollectedTypes, ConditionsCheck, ConsentRecord, ConsentSource
from pausegate.models.people import SYSTEM_ACTOR
from pausegate.models.plan import ResumePlan
from pausegate.models.runbook import ConsentSpec, Runbook
from pausegate.models.state import PauseState
from pausegate.policy.transitions import void_approvals


def has_conditions(plan: ResumePlan) -> bool:
    """Whether the plan sets conditions the workflow enforces (a profile, consent, data actions)."""
    return plan.collection is not None or plan.consent_only or bool(plan.data_actions)


def check_plan_conditions(runbook: Runbook, plan: ResumePlan) -> None:
    """Refuse, synchronously, a plan asking for what the runbook cannot provide."""
    problems: list[str] = []
    if plan.consent_only and runbook.consent is None:
        problems.append("the plan resumes only consenting employees, but the runbook names no consent source "
                        "(a consent: section)")
    datasets = {d.name for d in runbook.datasets}
    for i, action in enumerate(plan.data_actions):
        if action.dataset not in datasets:
            problems.append(f"data_actions[{i}]: dataset {action.dataset!r} is not one of the runbook's "
                            f"({', '.join(sorted(datasets))})")
    problems += _emptied_but_collected(runbook, plan)
    if problems:
        raise ActionRefused("invalid_plan", "; ".join(problems))


# Data actions after which a column must stay empty: new rows carrying it would undo them.
_EMPTYING = frozenset({"null_column", "drop_column"})


def _emptied_but_collected(runbook: Runbook, plan: ResumePlan) -> list[str]:
    """Actions that empty a column whose data type agents would go on capturing after the resume."""
    spec = runbook.collection
    if spec is None:
        return []
    kept = None if plan.collection is None else set(plan.collection.data_types)
    problems: list[str] = []
    for i, action in enumerate(plan.data_actions):
        column = getattr(action, "column", None)
        if action.kind not in _EMPTYING or action.dataset != spec.dataset or column is None:
            continue
        for data_type, where in sorted(spec.data_types.items()):
            if where.table == action.table and column in where.columns and (kept is None or data_type in kept):
                problems.append(f"data_actions[{i}] empties {action.table}.{column}, but agents would go on "
                                f"capturing {data_type}: drop it from the plan's collection too")
    return problems


def consent_source(runbook: Runbook) -> ConsentSource | None:
    spec = runbook.consent
    if spec is None:
        return None
    return ConsentSource(consent=spec, dataset=next(d for d in runbook.datasets if d.name == spec.dataset))


def counts_as_consent(spec: ConsentSpec, row: ConsentRecord) -> bool:
    """A row is consent when it says granted and, if the runbook names the roles consent is granted
    through, the database recorded the write as one of them: a flag anyone with UPDATE flipped is not."""
    if row.granted is not True:
        return False
    if not spec.granting_roles:
        return True
    return row.granted_at is not None and row.granted_as in spec.granting_roles


def collected_types(runbook: Runbook) -> CollectedTypes | None:
    spec = runbook.collection
    if spec is None:
        return None
    return CollectedTypes(collection=spec, dataset=next(d for d in runbook.datasets if d.name == spec.dataset))


def refuse_conditions(state: PauseState, runbook: Runbook, check: ConditionsCheck, now: datetime) -> None:
    """The plan's conditions did not hold after resuming, before RESUMED was reported: like drift of
    containment, the resume is refused, approvals are void and containment starts again (which undoes
    the switch and the grants); the plan stays for approvers to approve again or replace."""
    state.record(now, SYSTEM_ACTOR, "resume.refused",
                 "the plan's conditions do not hold: " + "; ".join(check.problems), accepted=False)
    void_approvals(state, now, "the plan's conditions did not hold at resume")
    c = state.containment
    c.agents.confirmed = False
    c.agents.switch_off = False
    c.datasets_pending = [d.name for d in runbook.datasets]
    c.contained_at = None
