"""Planning the REVOKE statements that close every path except break-glass, from the live catalog.

The planner is pure: given the catalog as it stands it returns the statements still needed, so
running it on a half-revoked database plans only what is left, and on a contained one plans nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from psycopg import sql

from pausegate.connectors.postgres.catalog import PUBLIC, READ_ALL, WRITE_ALL, Acl, Obj, State


@dataclass(frozen=True)
class Statement:
    """One statement, run as ``as_role`` when the grant being revoked was made by that role."""

    query: sql.Composed
    description: str
    as_role: str | None = None
    phase: int = 0


def _grantee(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name == PUBLIC else sql.Identifier(name)


def _grantees(names: set[str]) -> sql.Composable:
    # PUBLIC first, then by name, so the same state always yields the same statements.
    return sql.SQL(", ").join(_grantee(n) for n in sorted(names, key=lambda n: (n != PUBLIC, n)))


# Objects named in one merged REVOKE: bounded so that one statement's text and locks stay small.
MAX_OBJECTS_PER_STATEMENT = 100


def _keyword(obj: Obj) -> str:
    return "SEQUENCE" if obj.kind == "sequence" else "TABLE"


def _target(obj: Obj) -> sql.Composable:
    if obj.kind == "function":
        # Argument types come from format_type(): type expressions, not identifiers.
        args = sql.SQL(", ").join(sql.SQL(t) for t in obj.arg_types)  # type: ignore[arg-type]
        return sql.SQL("ROUTINE {}({})").format(sql.Identifier(obj.schema, obj.name), args)
    keyword = "SEQUENCE" if obj.kind == "sequence" else "TABLE"
    return sql.SQL(keyword + " {}").format(sql.Identifier(obj.schema, obj.name))  # type: ignore[arg-type]


def _as_role(grantor: str, owner: str, state: State) -> str | None:
    """REVOKE removes only grants made by the current role; a superuser acts as the owner."""
    if grantor == state.operator or (grantor == owner and state.operator_super):
        return None
    return grantor


def kept_roles(state: State, break_glass: list[str]) -> set[str]:
    """Roles whose access containment never touches: break-glass and the operator doing the work."""
    return set(break_glass) | {state.operator}


def _roots(items: list[Acl], revoking: set[str]) -> list[Acl]:
    """Grants whose grantor keeps its own privilege; grants below them in a grant-option chain go with
    CASCADE, and issuing them as a grantor that just lost its grant option would fail."""
    return [a for a in items if a.grantor not in revoking]


def plan_revoke(state: State, break_glass: list[str]) -> list[Statement]:
    """The statements still needed to close every path to the dataset except the kept roles'."""
    kept = kept_roles(state, break_glass)
    out: list[Statement] = []

    # 1. The schema: without USAGE nothing inside can be reached, so it closes first. USAGE is taken
    # from named roles only when the dataset is the whole schema (other tables may live there).
    schema_items = [
        a
        for a in state.schema_acls
        if a.privilege == "USAGE"
        and a.grantee not in kept
        and a.grantee != state.schema_owner
        and (a.grantee == PUBLIC or state.whole_schema)
    ]
    revoking = {a.grantee for a in schema_items}
    by_grantor: dict[str, set[str]] = defaultdict(set)
    for a in _roots(schema_items, revoking):
        by_grantor[a.grantor].add(a.grantee)
    for grantor, grantees in sorted(by_grantor.items()):
        out.append(
            Statement(
                sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {} CASCADE").format(
                    sql.Identifier(state.schema), _grantees(grantees)
                ),
                f"schema {state.schema} usage from {', '.join(sorted(grantees))}",
                _as_role(grantor, state.schema_owner, state),
                phase=1,
            )
        )

    # 2. Default privileges in the schema, so a table created meanwhile gets no grants. Global default
    # privileges cannot be narrowed to one schema; they are reported as residual instead.
    defaults: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in state.defacls:
        if d.in_schema and d.grantee not in kept and d.grantee != d.creator:
            defaults[(d.creator, d.objtype)].add(d.grantee)
    for (creator, objtype), grantees in sorted(defaults.items()):
        kind = sql.SQL("TABLES" if objtype == "r" else "SEQUENCES")
        out.append(
            Statement(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON {} FROM {} CASCADE"
                ).format(sql.Identifier(creator), sql.Identifier(state.schema), kind, _grantees(grantees)),
                f"default privileges of {creator} in {state.schema} for {', '.join(sorted(grantees))}",
                phase=2,
            )
        )

    # 3. Memberships that carry access to everything: the predefined read/write-all roles and the
    # owning roles (members act as owner). Group roles with plain grants keep their members: their
    # grants are revoked instead, which closes the path without touching unrelated memberships.
    owners = {o.owner for o in state.objects}
    carriers = {READ_ALL, WRITE_ALL} | {
        o for o in owners if o != state.operator and not (state.roles.get(o) and state.roles[o].superuser)
    }
    carried = [e for e in state.edges if e.role in carriers and e.member not in kept]
    for e in sorted(carried, key=lambda e: (e.role, e.member, e.grantor)):
        out.append(
            Statement(
                sql.SQL("REVOKE {} FROM {} GRANTED BY {} CASCADE").format(
                    sql.Identifier(e.role), sql.Identifier(e.member), sql.Identifier(e.grantor)
                ),
                f"membership of {e.member} in {e.role}",
                phase=3,
            )
        )

    # 4. Object privileges (table-level REVOKE ALL also drops the grantee's column privileges).
    by_oid: dict[int, list[Acl]] = defaultdict(list)
    objs = state.by_oid()
    for a in state.acls:
        obj = objs.get(a.oid)
        if obj is not None and a.grantee not in kept and a.grantee != obj.owner:
            by_oid[a.oid].append(a)
    order = {"function": 6, "sequence": 5}
    # Objects whose grants the operator revokes from the same roles share one statement: fewer
    # statements, the same ACL work (each object's ACL is still updated once per grantee). Only
    # identical grantee sets merge, so no object is asked to revoke from roles it never granted.
    merged: dict[tuple[int, str, frozenset[str]], list[Obj]] = defaultdict(list)
    for oid, items in sorted(
        by_oid.items(), key=lambda kv: (order.get(objs[kv[0]].kind, 4), objs[kv[0]].qname)
    ):
        obj = objs[oid]
        revoking = {a.grantee for a in items}
        grouped: dict[str | None, set[str]] = defaultdict(set)
        for a in _roots(items, revoking):
            grouped[_as_role(a.grantor, obj.owner, state)].add(a.grantee)
        for as_role, grantees in sorted(grouped.items(), key=lambda kv: kv[0] or ""):
            if as_role is None and obj.kind != "function":
                merged[(order.get(obj.kind, 4), _keyword(obj), frozenset(grantees))].append(obj)
                continue
            out.append(
                Statement(
                    sql.SQL("REVOKE ALL ON {} FROM {} CASCADE").format(_target(obj), _grantees(grantees)),
                    f"{obj.kind} {obj.qname} from {', '.join(sorted(grantees))}"
                    + (f" (granted by {as_role})" if as_role else ""),
                    as_role,
                    phase=order.get(obj.kind, 4),
                )
            )
    for (phase, keyword, roles), group in merged.items():
        for start in range(0, len(group), MAX_OBJECTS_PER_STATEMENT):
            part = group[start : start + MAX_OBJECTS_PER_STATEMENT]
            names = sql.SQL(", ").join(sql.Identifier(o.schema, o.name) for o in part)
            out.append(
                Statement(
                    sql.SQL("REVOKE ALL ON " + keyword + " {} FROM {} CASCADE").format(  # type: ignore[arg-type]
                        names, _grantees(set(roles))
                    ),
                    f"{part[0].kind} {', '.join(o.qname for o in part)} from {', '.join(sorted(roles))}",
                    phase=phase,
                )
            )
    out.sort(key=lambda st: st.phase)  # stable: the schema, defaults and memberships still close first
    return out
