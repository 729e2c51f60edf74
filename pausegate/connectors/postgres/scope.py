"""The exposure scope, derived from the catalog as it stood: as a model, or as its JSON document.

A company's scope holds about a million access paths (fifty thousand people, each reaching a few
hundred tables through their groups). Building a pydantic model per path and dumping it again
costs far more than deriving the paths, so the document evidence stores is built from plain rows
(``scope_document``); it is the very document ``ExposureScope.model_dump(mode="json")`` gives for
the same catalog (tests compare the two on every fixture). What verification needs from the scope
comes with it as ``ScopeFacts``, so the paths are never held as models.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pausegate.connectors.postgres.catalog import (
    PUBLIC,
    AccessRow,
    Edge,
    Role,
    State,
    access_rows,
    members_closure,
    object_holders,
)
from pausegate.connectors.scope_facts import ScopeFacts
from pausegate.models.access import (
    AccessPath,
    ExposureScope,
    GrantRecord,
    ObjectRecord,
    RoleAccess,
)
from pausegate.runbook.model import DatasetSpec


def _grant_rows(state: State) -> list[dict[str, Any]]:
    objs = state.by_oid()
    grants: list[dict[str, Any]] = [
        {
            "object": objs[a.oid].qname,
            "object_kind": objs[a.oid].kind,
            "grantee": a.grantee,
            "grantor": a.grantor,
            "privilege": a.privilege,
            "column": a.column,
            "grantable": a.grantable,
        }
        for a in state.acls
    ]
    grants += [
        {
            "object": state.schema,
            "object_kind": "schema",
            "grantee": a.grantee,
            "grantor": a.grantor,
            "privilege": a.privilege,
            "column": None,
            "grantable": a.grantable,
        }
        for a in state.schema_acls
    ]
    grants += [
        {
            "object": f"{state.schema if d.in_schema else '*'}"
            f".<future {'tables' if d.objtype == 'r' else 'sequences'} of {d.creator}>",
            "object_kind": "default_privileges",
            "grantee": d.grantee,
            "grantor": d.grantor,
            "privilege": d.privilege,
            "column": None,
            "grantable": d.grantable,
        }
        for d in state.defacls
    ]
    return grants


def _involved(state: State, rows: list[AccessRow]) -> tuple[list[Role], list[Edge]]:
    """The roles and memberships the scope lists: every role on a path, and memberships touching one."""
    involved = {r[0] for r in rows} | {r[3] for r in rows if r[3]}
    memberships = [e for e in state.edges if e.role in involved or e.member in involved]
    involved |= {e.member for e in memberships} | {e.role for e in memberships}
    return [r for n, r in sorted(state.roles.items()) if n in involved], memberships


def _header(spec: DatasetSpec, state: State, recorded_at: datetime) -> ExposureScope:
    """The scope without its long lists (grants, access paths, roles, memberships), left to pydantic."""
    return ExposureScope(
        dataset=spec.name,
        objects=[o.qname for o in state.objects],
        grants=[],
        access=[],
        break_glass_roles=list(spec.break_glass_roles),
        schema_name=state.schema,
        operator_role=state.operator,
        object_details=[
            ObjectRecord(name=o.qname, kind=o.kind, owner=o.owner, rls=o.rls, depends_on=o.depends_on)
            for o in state.objects
        ],
        roles=[],
        memberships=[],
        recorded_at=recorded_at,
        server_version=state.server_version,
    )


def scope_facts(state: State) -> ScopeFacts:
    """``ScopeFacts.of(scope_model(state))`` by set algebra over each object's holders and their
    membership closures: no path is built, so verification can start while the document is."""
    closure = members_closure(state.edges)
    set_closure = members_closure(state.edges, set_only=True)
    by_oid = state.by_oid()
    logins = {r.name for r in state.roles.values() if r.login}
    facts = ScopeFacts(
        schema_grantees={a.grantee for a in state.schema_acls},
        grants=len(state.acls) + len(state.schema_acls) + len(state.defacls),
    )
    for oid, by_holder in object_holders(state).items():
        reach: set[str] = set()
        for holder, path in by_holder:
            if path is not AccessPath.PREDEFINED:
                reach.add(holder)
            if holder != PUBLIC:
                reach |= (set_closure if path is AccessPath.SUPERUSER else closure).get(holder, set())
        name = by_oid[oid].qname
        facts.roles[name] = reach
        facts.logins[name] = reach & logins
    for d in state.defacls:
        if d.grantee != d.creator:
            where = state.schema if d.in_schema else "*"
            kind = "tables" if d.objtype == "r" else "sequences"
            facts.add(d.grantee, f"{where}.<future {kind} of {d.creator}>", d.grantee in logins)
    return facts


def scope_model(spec: DatasetSpec, state: State, recorded_at: datetime | None = None) -> ExposureScope:
    """The exposure scope as a model (small datasets, and the reference the document is held to)."""
    rows = access_rows(state)
    header = _header(spec, state, recorded_at or datetime.now(UTC))
    roles, memberships = _involved(state, rows)
    return header.model_copy(
        update={
            "roles": [r.record() for r in roles],
            "memberships": [e.record() for e in memberships],
            "grants": [GrantRecord.model_construct(**g) for g in _grant_rows(state)],
            "access": [
                RoleAccess.model_construct(role=r, object=o, path=p, via=v, login=lg, privileges=pr)
                for r, o, p, v, lg, pr in rows
            ],
        }
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while about a million acyclic rows are built: each of its
    full passes walks all of them, which doubled the derivation's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def scope_document(spec: DatasetSpec, state: State, recorded_at: datetime) -> tuple[dict[str, Any], ScopeFacts]:
    """``scope_model(...).model_dump(mode="json")`` without the models, and what verification needs."""
    with gc_paused():
        return _scope_document(spec, state, recorded_at)


def _scope_document(spec: DatasetSpec, state: State, recorded_at: datetime) -> tuple[dict[str, Any], ScopeFacts]:
    rows = access_rows(state)
    document = _header(spec, state, recorded_at).model_dump(mode="json")
    roles, memberships = _involved(state, rows)
    document["roles"] = [
        {"name": r.name, "login": r.login, "superuser": r.superuser, "bypassrls": r.bypassrls} for r in roles
    ]
    document["memberships"] = [
        {"role": e.role, "member": e.member, "grantor": e.grantor, "inherit": e.inherit, "set": e.set,
         "admin": e.admin}
        for e in memberships
    ]
    grants = _grant_rows(state)
    document["grants"] = grants
    facts = ScopeFacts(
        schema_grantees={g["grantee"] for g in grants if g["object_kind"] == "schema"}, grants=len(grants)
    )
    access: list[dict[str, Any]] = []
    append = access.append
    add = facts.add
    for role, obj, path, via, login, privileges in rows:
        append(
            {"role": role, "object": obj, "path": path.value, "via": via, "login": login, "privileges": privileges}
        )
        add(role, obj, login)
    document["access"] = access
    return document, facts


__all__ = ["scope_document", "scope_model"]
