"""Pure checks on the grants a resume plan restores, and what the plan changes against the scope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping

from pausegate.models.access import UNREVOCABLE_PATHS, ExposureScope, GrantSpec, PlanDiff

PUBLIC_NAMES = frozenset({"public", "PUBLIC"})


def validate_plan_grants(
    grants: Iterable[GrantSpec],
    *,
    forbid_public: bool = True,
    allowed_roles: Collection[str] | None = None,
    datasets: Mapping[str, Collection[str] | None] | None = None,
) -> list[str]:
    """Every reason the grants may not be restored; empty when they may.

    ``allowed_roles``: if given, the only grantees allowed (ResumePolicy.allowed_grantee_roles).
    ``datasets``: dataset name -> its tables (None or empty: any table of the schema).
    """
    problems: list[str] = []
    seen: set[tuple[str, str, str, tuple[str, ...] | None]] = set()
    allowed = set(allowed_roles) if allowed_roles is not None else None
    for i, g in enumerate(grants):
        where = f"grant {i + 1} ({g.role} on {g.dataset}.{g.table})"
        if forbid_public and g.role in PUBLIC_NAMES:
            problems.append(f"{where}: grants to PUBLIC are forbidden")
        if g.role.startswith("pg_"):
            problems.append(f"{where}: {g.role} is a predefined role")
        if allowed is not None and g.role not in allowed:
            problems.append(
                f"{where}: {g.role} is not an allowed grantee ({', '.join(sorted(allowed)) or 'none'})"
            )
        if datasets is not None:
            if g.dataset not in datasets:
                problems.append(f"{where}: unknown dataset {g.dataset!r}")
            else:
                tables = datasets[g.dataset]
                if tables and g.table not in tables:
                    problems.append(f"{where}: {g.table!r} is not a table of dataset {g.dataset}")
        key = (g.dataset, g.role, g.table, tuple(g.columns) if g.columns is not None else None)
        if key in seen:
            problems.append(f"{where}: repeats an earlier grant")
        seen.add(key)
    return problems


def _object_name(scope: ExposureScope, table: str) -> str:
    return f"{scope.schema_name}.{table}" if scope.schema_name else table


def plan_diff(scope: ExposureScope, grants: Iterable[GrantSpec]) -> PlanDiff:
    """Who loses, keeps or gains access to which object if exactly ``grants`` are restored.

    Access after the plan: the planned grantees and every role that inherits from or can become them
    (memberships as recorded in the scope), break-glass roles as before, and the access no REVOKE
    closes (superusers, owners). PUBLIC counts as one role.
    """
    members: dict[str, set[str]] = defaultdict(set)
    for m in scope.memberships:
        if m.inherit or m.set:
            members[m.role].add(m.member)

    def expand(role: str) -> set[str]:
        out, stack = {role}, [role]
        while stack:
            for m in members.get(stack.pop(), ()):
                if m not in out:
                    out.add(m)
                    stack.append(m)
        return out

    before: dict[str, set[str]] = defaultdict(set)
    kept: dict[str, set[str]] = defaultdict(set)
    keep_roles = set(scope.break_glass_roles)
    for a in scope.access:
        if a.path.value == "default_privileges":
            continue
        before[a.role].add(a.object)
        if a.path in UNREVOCABLE_PATHS or a.role in keep_roles or (a.via and a.via in keep_roles):
            kept[a.role].add(a.object)

    after: dict[str, set[str]] = defaultdict(set, {r: set(o) for r, o in kept.items()})
    for g in grants:
        obj = _object_name(scope, g.table)
        for role in expand(g.role):
            after[role].add(obj)

    diff_loses: dict[str, list[str]] = {}
    diff_keeps: dict[str, list[str]] = {}
    diff_gains: dict[str, list[str]] = {}
    for role in sorted(set(before) | set(after)):
        had, will = before.get(role, set()), after.get(role, set())
        if had - will:
            diff_loses[role] = sorted(had - will)
        if had & will:
            diff_keeps[role] = sorted(had & will)
        if will - had:
            diff_gains[role] = sorted(will - had)
    return PlanDiff(loses=diff_loses, keeps=diff_keeps, gains=diff_gains)
