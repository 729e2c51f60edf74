"""Verifying that access to a dataset is gone, by asking PostgreSQL: the catalogs, the privilege
functions for every role the scope recorded, real reads as former readers, and a table created now.

Every identifier reaches SQL through ``psycopg.sql.Identifier`` or server-side ``format(%I)``.
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from typing import Any

import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.admin import MAX_LISTED
from pausegate.connectors.postgres.catalog import (
    PATH_PRIORITY,
    PUBLIC,
    READ_ALL,
    RELATION_KINDS,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    WRITE_ALL,
    Obj,
    State,
    compute_access,
)
from pausegate.connectors.postgres.plan import kept_roles
from pausegate.connectors.scope_facts import ScopeFacts
from pausegate.models.access import UNREVOCABLE_PATHS, AccessPath, DatasetCheck, ExposureScope, RoleAccess
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

WITNESS_ROLES = 3

# Runs a SELECT as each role inside a subtransaction; insufficient_privilege is the expected answer.
# Server-side quoting (format %I) keeps identifiers out of client-side string building.
PROBE_FUNCTION = """
CREATE FUNCTION pg_temp.pausegate_probe(roles text[], schemas text[], rels text[])
RETURNS TABLE(role text, schema text, rel text, state text) LANGUAGE plpgsql AS $$
DECLARE i int;
BEGIN
  FOR i IN 1 .. coalesce(array_length(roles, 1), 0) LOOP
    role := roles[i]; schema := schemas[i]; rel := rels[i];
    BEGIN
      EXECUTE format('SET LOCAL ROLE %I', roles[i]);
      EXECUTE format('SELECT 1 FROM %I.%I LIMIT 1', schemas[i], rels[i]);
      RESET ROLE;
      state := 'read';
    EXCEPTION WHEN OTHERS THEN
      state := SQLSTATE;
    END;
    RETURN NEXT;
  END LOOP;
END $$
"""


def containment_check(spec: DatasetSpec, scope: ExposureScope, residual: list[RoleAccess]) -> DatasetCheck:
    """Contained unless some ``residual`` access is revocable or was not in the recorded scope."""
    recorded = {(a.role, a.object, a.path) for a in scope.access}
    accepted = [
        a for a in residual if a.path in UNREVOCABLE_PATHS and (a.role, a.object, a.path) in recorded
    ]
    accepted_keys = {id(a) for a in accepted}
    violations = [a for a in residual if id(a) not in accepted_keys]
    return DatasetCheck(
        dataset=spec.name,
        contained=not violations,
        violations=[a.describe() for a in violations][:MAX_LISTED],
        violation_count=len(violations),
        accepted=[a.describe() for a in accepted][:MAX_LISTED],
    )


async def residual_access(
    conn: AsyncConnection[Any], spec: DatasetSpec, facts: ScopeFacts, state: State, *, read_probe_limit: int
) -> list[RoleAccess]:
    """Residual access, asked of the database three ways (see the module's docstring), inside the
    caller's transaction, which must roll back: the probe creates a table. Break-glass roles and the
    operator are not residual; superusers and owners are, by name and path."""
    kept = kept_roles(state, spec.break_glass_roles)
    objs = {o.qname: o for o in state.objects}
    current = compute_access(state)
    explain: dict[tuple[str, str], RoleAccess] = {}
    for a in current:
        key = (a.role, a.object)
        if key not in explain or PATH_PRIORITY[a.path] < PATH_PRIORITY[explain[key].path]:
            explain[key] = a

    def expected(a: RoleAccess) -> bool:
        return a.role in kept or (a.via is not None and a.via in spec.break_glass_roles)

    residual: dict[tuple[str, str, AccessPath, str | None], RoleAccess] = {}

    def add(a: RoleAccess) -> None:
        if not expected(a):
            residual.setdefault((a.role, a.object, a.path, a.via), a)

    def classify(role: str, obj: str) -> RoleAccess:
        if (role, obj) in explain:
            return explain[(role, obj)]
        rec = state.roles.get(role)
        path = AccessPath.SUPERUSER if rec and rec.superuser else AccessPath.OTHER
        return RoleAccess(role=role, object=obj, path=path, login=bool(rec and rec.login))

    # 1. Paths the catalogs still show (schema objects; future-table defaults outside the schema's
    # own defaults cannot be revoked per schema and show here too).
    for a in current:
        if a.path is AccessPath.DEFAULT_PRIVILEGES and not a.object.startswith("*."):
            continue  # schema defaults are checked below by creating a table
        add(a)

    # 2. The privilege functions, for every (role, object) the scope recorded and PUBLIC.
    present = set(state.roles) - kept
    asked = {o: (facts.roles.get(o, set()) & present) | ({PUBLIC} - kept) for o in objs}
    for role, obj in await still_privileged(conn, state, asked, objs):
        add(classify(role, obj))
    if state.whole_schema:
        schema_roles = sorted(
            facts.schema_grantees - kept - {state.schema_owner}
        )
        schema_roles = [r for r in schema_roles if r == PUBLIC or r in state.roles]
        cur = await conn.execute(
            "SELECT r FROM unnest(%s::text[]) r "
            "WHERE has_schema_privilege(CASE WHEN r = 'PUBLIC' THEN 'public' ELSE r END, "
            "%s::oid, 'USAGE')",
            (schema_roles, state.schema_oid),
        )
        for (role,) in await cur.fetchall():
            rec = state.roles.get(role)
            if rec is None or not rec.superuser:
                add(
                    RoleAccess(
                        role=role,
                        object=state.schema,
                        path=AccessPath.DIRECT if role != PUBLIC else AccessPath.PUBLIC,
                        via="schema usage",
                        login=bool(rec and rec.login),
                    )
                )

    # 3. Real reads as former login readers (and a few login roles with no recorded access, which
    # stand for PUBLIC).
    former = set().union(*(facts.logins.get(o, set()) for o in objs)) | {a.role for a in current if a.login}
    readers = sorted(r for r in former if r in state.roles and r not in kept and state.roles[r].login)
    reading = set(readers)
    witnesses = [
        r.name
        for r in sorted(state.roles.values(), key=lambda r: r.name)
        if r.login
        and not r.superuser
        and r.name not in kept
        and r.name not in reading
        and not r.name.startswith("pg_")
    ][:WITNESS_ROLES]
    relations = [o for o in state.objects if o.kind in RELATION_KINDS]
    for role, relation in await _real_reads(conn, readers + witnesses, relations, read_probe_limit):
        add(classify(role, relation.qname))

    # 4. A table created now must not be readable by anyone who could read the dataset.
    for a in await _future_table_access(conn, state, kept):
        add(a)

    out = sorted(residual.values(), key=lambda a: (a.object, a.role, PATH_PRIORITY[a.path]))
    log.info("verified", dataset=spec.name, residual=len(out))
    return out

async def _real_reads(
    conn: AsyncConnection[Any], roles: list[str], relations: list[Obj], limit: int
) -> list[tuple[str, Obj]]:
    if not roles or not relations:
        return []
    cur = await conn.execute(
        "SELECT r FROM unnest(%s::text[]) r WHERE pg_has_role(current_user, r, 'SET')", (roles,)
    )
    settable = [r for (r,) in await cur.fetchall()]
    skipped = set(roles) - set(settable)
    if skipped:
        log.warning("cannot SET ROLE for a real read; catalog answer only", roles=sorted(skipped)[:20])
    pairs = _probe_pairs(settable, relations, limit)
    if not pairs:
        return []
    await conn.execute(PROBE_FUNCTION)
    cur = await conn.execute(
        "SELECT role, schema, rel, state FROM pg_temp.pausegate_probe(%s, %s, %s)",
        ([r for r, _ in pairs], [o.schema for _, o in pairs], [o.name for _, o in pairs]),
    )
    by_name = {(o.schema, o.name): o for o in relations}
    out: list[tuple[str, Obj]] = []
    for role, schema, rel, state in await cur.fetchall():
        if state == "read":
            out.append((role, by_name[(schema, rel)]))
        elif state != "42501":
            log.warning("real read failed for another reason", role=role, relation=rel, sqlstate=state)
    return out


async def _privileged(conn: AsyncConnection[Any], pairs: list[tuple[str, Obj]]) -> list[tuple[str, str]]:
    """The (role, object) pairs where the role still holds any privilege on the object."""
    if not pairs:
        return []
    fn_for = {"sequence": "seq", "function": "fn"}
    cur = await conn.execute(
        """
        SELECT r, o, k FROM unnest(%s::text[], %s::oid[], %s::text[]) AS p(r, o, k)
        WHERE CASE k
          WHEN 'seq' THEN has_sequence_privilege(r, o, 'USAGE, SELECT, UPDATE')
          WHEN 'fn' THEN has_function_privilege(r, o, 'EXECUTE')
          ELSE has_table_privilege(r, o, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               OR has_any_column_privilege(r, o, 'SELECT, INSERT, UPDATE, REFERENCES')
        END
        """,
        (
            # The privilege functions spell PUBLIC in lower case.
            ["public" if r == PUBLIC else r for r, _ in pairs],
            [o.oid for _, o in pairs],
            [fn_for.get(o.kind, "rel") for _, o in pairs],
        ),
    )
    by_oid = {o.oid: o for _, o in pairs}
    return [(PUBLIC if r == "public" else r, by_oid[o].qname) for r, o, _ in await cur.fetchall()]


def _probe_pairs(roles: list[str], relations: list[Obj], limit: int) -> list[tuple[str, Obj]]:
    """Every (role, relation) pair when that fits the limit; otherwise a sample in which every
    relation is probed, and every role too while the roles fit the limit (beyond it, a random
    choice of them: the catalog answer has already asked about every role)."""
    if not roles or not relations:
        return []
    if len(roles) * len(relations) <= limit:
        return [(r, o) for r in roles for o in relations]
    if len(roles) + len(relations) > limit:
        roles = sorted(random.SystemRandom().sample(roles, max(1, limit - len(relations))))
    pairs: dict[tuple[str, int], tuple[str, Obj]] = {}
    n = max(len(roles), len(relations))
    for i in range(n):
        r, o = roles[i % len(roles)], relations[i % len(relations)]
        pairs[(r, o.oid)] = (r, o)
    for r in roles:
        if len(pairs) >= limit:
            break
        for o in relations:
            if len(pairs) >= limit:
                break
            pairs.setdefault((r, o.oid), (r, o))
    return list(pairs.values())


# Up to this many (role, object) pairs are each put to the privilege functions; above it, every role
# is put to pg_has_role against the grantees left on the objects, and the pairs that may still hold a
# privilege, with a random sample of the others, go to the privilege functions.
EXACT_PAIRS = 20_000
SAMPLED_PAIRS = 2_000
# Above this many pg_has_role calls (roles x remaining grantees: many grants survived), asking every
# pair is the cheaper question.
MEMBERSHIP_CALLS = 5_000_000

HOLDERS_Q = """
SELECT c.oid, a.grantee FROM pg_class c,
     aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                              c.relowner))) a
WHERE c.oid = ANY(%(rels)s::oid[])
  AND a.privilege_type = ANY(CASE WHEN c.relkind = 'S' THEN %(seq)s::text[] ELSE %(rel)s::text[] END)
UNION
SELECT at.attrelid, a.grantee FROM pg_attribute at, aclexplode(at.attacl) a
WHERE at.attrelid = ANY(%(rels)s::oid[]) AND at.attnum > 0 AND NOT at.attisdropped AND at.attacl IS NOT NULL
  AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
UNION
SELECT p.oid, a.grantee FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.oid = ANY(%(funcs)s::oid[]) AND a.privilege_type = 'EXECUTE'
"""


async def still_privileged(
    conn: AsyncConnection[Any], state: State, asked: dict[str, set[str]], objs: dict[str, Obj]
) -> list[tuple[str, str]]:
    """The (role, object) pairs, of the roles ``asked`` about each object, where the role still holds
    any privilege on the object.

    Few pairs: each is asked of the privilege functions. Many (a company's scope): each object's
    remaining grantees are read from its ACL (the holders the privilege functions consult), every
    asked role is put to ``pg_has_role`` against each of them, and the pairs that may still hold a
    privilege (with superusers', and the predefined read/write-all roles' members') go to the
    privilege functions for the final answer, with a random sample of the rest as a cross-check.
    """
    total = sum(len(roles) for roles in asked.values())
    if total <= EXACT_PAIRS:
        return await _privileged(conn, [(r, objs[o]) for o, roles in sorted(asked.items()) for r in sorted(roles)])
    by_oid = {o.oid: o for o in objs.values()}
    rels = [o.oid for o in objs.values() if o.kind != "function"]
    funcs = [o.oid for o in objs.values() if o.kind == "function"]
    cur = await conn.execute(
        HOLDERS_Q, {"rels": rels, "funcs": funcs, "seq": list(SEQUENCE_PRIVILEGES), "rel": list(TABLE_PRIVILEGES)}
    )
    holders: dict[str, set[int]] = defaultdict(set)  # object -> grantee oids (0: PUBLIC)
    for oid, grantee in await cur.fetchall():
        holders[by_oid[oid].qname].add(grantee)
    cur = await conn.execute(
        "SELECT oid FROM pg_roles WHERE rolname = ANY(%s::text[])", ([READ_ALL, WRITE_ALL],)
    )
    predefined = [oid for (oid,) in await cur.fetchall()]
    for o in objs.values():
        if o.kind != "function":
            holders[o.qname].update(predefined)
    # A grantee no role is a member of passes its privileges to itself alone (and superusers pass
    # every check): only grantees with members are worth a pg_has_role per asked role.
    cur = await conn.execute(
        "SELECT r.oid, r.rolname, EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid) "
        "FROM pg_roles r WHERE r.oid = ANY(%s::oid[])",
        (sorted({g for gs in holders.values() for g in gs if g != 0}),),
    )
    grantee_rows = await cur.fetchall()
    grantees = sorted(oid for oid, _, has_members in grantee_rows if has_members)
    asked_roles = set().union(*asked.values()) - {PUBLIC}
    roles = sorted(asked_roles)
    if len(roles) * len(grantees) > MEMBERSHIP_CALLS:
        return await _privileged(conn, [(r, objs[o]) for o, rs in sorted(asked.items()) for r in sorted(rs)])
    has: dict[str, set[int]] = defaultdict(set)
    for oid, name, _ in grantee_rows:
        if name in asked_roles:
            has[name].add(oid)
    if grantees:
        # Sorted by role, so the server's cache of one role's memberships serves each run of calls.
        cur = await conn.execute(
            "SELECT r, g FROM unnest(%s::text[]) r, unnest(%s::oid[]) g WHERE pg_has_role(r, g, 'USAGE')",
            (roles, grantees),
        )
        for r, g in await cur.fetchall():
            has[r].add(g)
    superusers = {r.name for r in state.roles.values() if r.superuser}
    candidates: list[tuple[str, str]] = []
    rest: list[tuple[str, list[str]]] = []  # (object, roles that hold none of its grantees)
    for name, asked_roles in sorted(asked.items()):
        if 0 in holders[name]:  # PUBLIC holds a privilege: every role does
            may = set(asked_roles)
        else:
            may = asked_roles & (superusers | {r for r, gs in has.items() if not gs.isdisjoint(holders[name])})
        candidates += [(r, name) for r in sorted(may)]
        if len(may) < len(asked_roles):
            rest.append((name, list(asked_roles - may)))
    sample = _sample_pairs(rest, SAMPLED_PAIRS)
    found = await _privileged(conn, [(r, objs[o]) for r, o in candidates + sample])
    missed = sorted(set(found) - set(candidates))
    if missed:
        # The privilege functions know a path the ACLs did not show: ask about every pair.
        log.error("privilege functions disagree with the ACLs; asking every pair", pairs=missed[:20])
        return await _privileged(conn, [(r, objs[o]) for o, rs in sorted(asked.items()) for r in sorted(rs)])
    return found


def _sample_pairs(groups: list[tuple[str, list[str]]], size: int) -> list[tuple[str, str]]:
    """A uniform random sample of ``size`` (role, object) pairs from (object, roles) groups."""
    total = sum(len(roles) for _, roles in groups)
    picks = sorted(random.SystemRandom().sample(range(total), min(size, total)))
    out: list[tuple[str, str]] = []
    start = 0
    it = iter(picks)
    pick = next(it, None)
    for obj, roles in groups:
        while pick is not None and pick < start + len(roles):
            out.append((roles[pick - start], obj))
            pick = next(it, None)
        start += len(roles)
    return out


async def _future_table_access(conn: AsyncConnection[Any], state: State, kept: set[str]) -> list[RoleAccess]:
    """Create a table in the schema as each role whose default privileges apply there (inside the
    caller's rolled-back transaction) and ask who could read it."""
    creators = {state.operator, state.schema_owner} | {d.creator for d in state.defacls}
    cur = await conn.execute(
        "SELECT r FROM unnest(%s::text[]) r WHERE pg_has_role(current_user, r, 'SET') "
        "AND has_schema_privilege(r, %s::oid, 'CREATE')",
        (sorted(creators), state.schema_oid),
    )
    creators = {r for (r,) in await cur.fetchall()}
    # Every role, not only former readers: a default privilege added after containment names anyone.
    former = [
        PUBLIC,
        *sorted(
            r.name
            for r in state.roles.values()
            if not r.superuser and r.name not in kept and r.name not in (READ_ALL, WRITE_ALL)
        ),
    ]
    out: list[RoleAccess] = []
    for creator in sorted(creators):
        name = f"pausegate_probe_{secrets.token_hex(6)}"
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(creator)))
        await conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(state.schema, name)))
        await conn.execute("RESET ROLE")
        cur = await conn.execute(
            sql.SQL(
                # Members of the creator own the new table: that is the owner path, reported elsewhere.
                "SELECT r FROM unnest(%s::text[]) r WHERE r <> %s "
                "AND CASE WHEN r = 'PUBLIC' THEN true ELSE NOT pg_has_role(r, %s, 'USAGE') END "
                "AND has_table_privilege(CASE WHEN r = 'PUBLIC' THEN 'public' ELSE r END, "
                "(SELECT c.oid FROM pg_class c WHERE c.relnamespace = %s::oid AND c.relname = %s), "
                "'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
            ),
            (former, creator, creator, state.schema_oid, name),
        )
        for (role,) in await cur.fetchall():
            rec = state.roles.get(role)
            out.append(
                RoleAccess(
                    role=role,
                    object=f"{state.schema}.<new table of {creator}>",
                    path=AccessPath.PUBLIC if role == PUBLIC else AccessPath.DEFAULT_PRIVILEGES,
                    via=creator,
                    login=bool(rec and rec.login),
                )
            )
    return out
