"""Restoring a drill's canary to the catalog snapshot its revoke captured, and proving it.

What a revoke can change is compared: the ACL entries of every object the snapshot covers (``relacl``
and column ACLs, by qualified name, so a recreated table is still found), the schema's ACL, the
schema's default privileges, and the memberships in the roles whose members a revoke takes away (the
objects' owners and the predefined read/write-all roles). Each side is a *set* of entries: PostgreSQL
appends a re-granted entry to the ACL array, so the array's order may differ from the snapshot's while
the access is the same.

The restore grants what is missing and revokes what was added since, each statement as the grantor the
snapshot names, in passes (a grant option restored in one pass lets a grant below it run in the next).
Running it again on a restored canary changes nothing. Every identifier reaches SQL through
``psycopg.sql.Identifier``; privileges are checked against PostgreSQL's fixed keywords first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.catalog import (
    PUBLIC,
    READ_ALL,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    WRITE_ALL,
    State,
    load_state,
)
from pausegate.connectors.postgres.snapshot import state_from_snapshot
from pausegate.errors import TargetRejectedError
from pausegate.models.drill import CanaryRestored
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

MAX_PASSES = 4
PRIVILEGES = frozenset({*TABLE_PRIVILEGES, *SEQUENCE_PRIVILEGES, "EXECUTE", "USAGE", "CREATE"})

# (kind, qualified name, grantee, grantor, privilege, grantable, column)
AclEntry = tuple[str, str, str, str, str, bool, str]
# (creator, objtype, grantee, grantor, privilege, grantable)
DefaultEntry = tuple[str, str, str, str, str, bool]
# (role, member, grantor, inherit, set, admin)
MemberEntry = tuple[str, str, str, bool, bool, bool]


@dataclass(frozen=True)
class Entries:
    """What a revoke can change, as sets of entries."""

    acls: frozenset[AclEntry]
    defaults: frozenset[DefaultEntry]
    members: frozenset[MemberEntry]

    def size(self) -> int:
        return len(self.acls) + len(self.defaults) + len(self.members)


def carriers(state: State) -> set[str]:
    """Roles whose memberships a revoke may take away (``plan.plan_revoke`` step 3)."""
    owners = {o.owner for o in state.objects}
    return {READ_ALL, WRITE_ALL} | {
        o for o in owners if o != state.operator and not (state.roles.get(o) and state.roles[o].superuser)
    }


def entries(state: State, *, names: set[str] | None = None, roles: set[str] | None = None) -> Entries:
    """The entries of ``state``, for the objects named in ``names`` and the memberships in ``roles``
    (default: those of ``state`` itself: the snapshot decides what is compared)."""
    objects = {o.oid: o for o in state.objects}
    names = names if names is not None else {o.qname for o in state.objects}
    roles = roles if roles is not None else carriers(state)
    acls = {
        (objects[a.oid].kind, objects[a.oid].qname, a.grantee, a.grantor, a.privilege, a.grantable, a.column or "")
        for a in state.acls if a.oid in objects and objects[a.oid].qname in names
    }
    acls |= {("schema", state.schema, a.grantee, a.grantor, a.privilege, a.grantable, "") for a in state.schema_acls}
    defaults = {(d.creator, d.objtype, d.grantee, d.grantor, d.privilege, d.grantable)
                for d in state.defacls if d.in_schema}
    members = {(e.role, e.member, e.grantor, e.inherit, e.set, e.admin) for e in state.edges if e.role in roles}
    return Entries(frozenset(acls), frozenset(defaults), frozenset(members))


def differences(before: Entries, now: Entries) -> list[str]:
    """Each entry on one side only, sorted: ``-`` missing now, ``+`` added since."""
    out: list[str] = []
    for what, b, n in (("acl", before.acls, now.acls), ("default", before.defaults, now.defaults),
                       ("member", before.members, now.members)):
        out += [f"-{what}:{':'.join(map(str, e))}" for e in sorted(b - n)]
        out += [f"+{what}:{':'.join(map(str, e))}" for e in sorted(n - b)]
    return out


def _grantee(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name == PUBLIC else sql.Identifier(name)


def _privilege(p: str) -> sql.Composable:
    if p not in PRIVILEGES:
        raise TargetRejectedError(f"restore: {p!r} is not a privilege keyword")
    return sql.SQL(p)  # type: ignore[arg-type]  # one of the fixed keywords, checked above


def _acl_target(kind: str, qname: str, state: State) -> sql.Composable | None:
    """The object an entry is about, as SQL; None when it is gone from the live catalog."""
    if kind == "schema":
        return sql.SQL("SCHEMA {}").format(sql.Identifier(qname))
    obj = next((o for o in state.objects if o.qname == qname), None)
    if obj is None:
        return None
    if obj.kind == "function":
        args = sql.SQL(", ").join(sql.SQL(t) for t in obj.arg_types)  # type: ignore[arg-type]  # format_type()
        return sql.SQL("ROUTINE {}({})").format(sql.Identifier(obj.schema, obj.name), args)
    keyword = "SEQUENCE" if obj.kind == "sequence" else "TABLE"
    return sql.SQL(keyword + " {}").format(sql.Identifier(obj.schema, obj.name))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Step:
    query: sql.Composed
    as_role: str | None


def _acl_step(e: AclEntry, grant: bool, state: State) -> Step | None:
    kind, qname, grantee, grantor, privilege, grantable, column = e
    target = _acl_target(kind, qname, state)
    if target is None:
        return None
    priv = _privilege(privilege)
    if column:
        priv = sql.SQL("{} ({})").format(priv, sql.Identifier(column))
    if grant:
        query = sql.SQL("GRANT {} ON {} TO {}" + (" WITH GRANT OPTION" if grantable else "")).format(
            priv, target, _grantee(grantee))
    else:
        query = sql.SQL("REVOKE {} ON {} FROM {} CASCADE").format(priv, target, _grantee(grantee))
    owner = state.schema_owner if kind == "schema" else next(
        (o.owner for o in state.objects if o.qname == qname), None)
    as_role = None if grantor == state.operator or (grantor == owner and state.operator_super) else grantor
    return Step(query, as_role)


def _default_step(e: DefaultEntry, grant: bool, schema: str) -> Step:
    creator, objtype, grantee, _grantor, privilege, grantable = e
    kind = sql.SQL("TABLES" if objtype == "r" else "SEQUENCES")
    head = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ").format(
        sql.Identifier(creator), sql.Identifier(schema))
    if grant:
        body = sql.SQL("GRANT {} ON {} TO {}" + (" WITH GRANT OPTION" if grantable else "")).format(
            _privilege(privilege), kind, _grantee(grantee))
    else:
        body = sql.SQL("REVOKE {} ON {} FROM {} CASCADE").format(_privilege(privilege), kind, _grantee(grantee))
    return Step(head + body, None)


def _member_step(e: MemberEntry, grant: bool) -> Step:
    role, member, grantor, inherit, set_, admin = e
    if grant:
        query = sql.SQL("GRANT {} TO {} WITH INHERIT {}, SET {}, ADMIN {} GRANTED BY {}").format(
            sql.Identifier(role), sql.Identifier(member), sql.SQL("TRUE" if inherit else "FALSE"),
            sql.SQL("TRUE" if set_ else "FALSE"), sql.SQL("TRUE" if admin else "FALSE"), sql.Identifier(grantor))
    else:
        query = sql.SQL("REVOKE {} FROM {} GRANTED BY {} CASCADE").format(
            sql.Identifier(role), sql.Identifier(member), sql.Identifier(grantor))
    return Step(query, None)


def restore_steps(before: Entries, now: Entries, state: State) -> list[Step]:
    """The statements that turn ``now`` into ``before``: memberships first, then grants (owners' and
    the operator's before others', so grant options come back before the grants made with them), then
    what was added since is revoked."""
    steps = [_member_step(e, True) for e in sorted(before.members - now.members)]
    missing = sorted(before.acls - now.acls, key=lambda e: (e[3] != state.operator, e))
    steps += [st for e in missing if (st := _acl_step(e, True, state)) is not None]
    steps += [_default_step(e, True, state.schema) for e in sorted(before.defaults - now.defaults)]
    steps += [st for e in sorted(now.acls - before.acls) if (st := _acl_step(e, False, state)) is not None]
    steps += [_default_step(e, False, state.schema) for e in sorted(now.defaults - before.defaults)]
    steps += [_member_step(e, False) for e in sorted(now.members - before.members)]
    return steps


async def _run(conn: AsyncConnection[Any], step: Step) -> bool:
    """One statement in a savepoint, as its grantor: False when PostgreSQL refused it (a grant option
    not back yet); the next pass tries it again."""
    try:
        async with conn.transaction():
            if step.as_role:
                await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(step.as_role)))
            await conn.execute(step.query)
            if step.as_role:
                await conn.execute("RESET ROLE")
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidGrantOperation) as exc:
        log.info("canary.restore.deferred", error=exc.diag.message_primary)
        return False
    return True


async def restore_canary_on(conn: AsyncConnection[Any], spec: DatasetSpec, snapshot: Any) -> CanaryRestored:
    """Restore the canary's catalog entries to ``snapshot`` (a catalog snapshot document) and compare."""
    before_state, _ = state_from_snapshot(snapshot)
    names = {o.qname for o in before_state.objects}
    roles = carriers(before_state)
    before = entries(before_state)
    ran = 0
    async with conn.transaction():
        for _ in range(MAX_PASSES):
            live = await load_state(conn, spec, strict=False)
            now = entries(live, names=names, roles=roles)
            steps = restore_steps(before, now, live)
            if not steps:
                break
            done = [await _run(conn, st) for st in steps]  # one after another: grants build on grants
            ran += sum(done)
            if not any(done):
                break
    live = await load_state(conn, spec, strict=False)
    left = differences(before, entries(live, names=names, roles=roles))
    log.info("canary.restored", dataset=spec.name, statements=ran, equal=not left)
    return CanaryRestored(statements=ran, equal=not left, differences=left[:MAX_LISTED_IDS], compared=before.size())


async def compare_on(conn: AsyncConnection[Any], spec: DatasetSpec, snapshot: Any) -> list[str]:
    """How the live catalog differs from ``snapshot`` (empty: equal as sets), changing nothing."""
    before_state, _ = state_from_snapshot(snapshot)
    live = await load_state(conn, spec, strict=False)
    return differences(entries(before_state), entries(live, names={o.qname for o in before_state.objects},
                                                      roles=carriers(before_state)))
