"""Verifying that access to a dataset is gone, by asking PostgreSQL: the catalogs, the privilege
functions for every role the scope recorded, real reads as former readers, and a table created now.

Every identifier reaches SQL through ``psycopg.sql.Identifier`` or server-side ``format(%I)``.
"""

from __future__ import annotations

import heapq
import random
import secrets
from collections import defaultdict
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import structlog
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.admin import MAX_LISTED
from pausegate.connectors.postgres.catalog import (
    PATH_PRIORITY,
    PUBLIC,
    READ_ALL,
    RELACL,
    RELATION_KINDS,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    WRITE_ALL,
    Obj,
    State,
    compute_access,
    detoasted,
)
from pausegate.connectors.postgres.plan import kept_roles
from pausegate.connectors.scope_facts import ScopeFacts
from pausegate.models.access import UNREVOCABLE_PATHS, AccessPath, DatasetCheck, ExposureScope, RoleAccess
from pausegate.models.runbook import DatasetSpec

log = structlog.get_logger(__name__)

WITNESS_ROLES = 3
_NONE: frozenset[str] = frozenset()

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

    # 2. The privilege functions, for every (role, object) the scope recorded and PUBLIC. The recorded
    # sets are passed as they are (a company's hold a million pairs; copying them filtered cost more
    # than the database's answer): roles dropped since, and the kept roles, are left out as read.
    recorded = {o: facts.roles.get(o, _NONE) for o in objs}
    for role, obj in await still_privileged(conn, state, recorded, objs, kept=kept, public=True):
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
    witnesses = heapq.nsmallest(
        WITNESS_ROLES,
        (
            r.name
            for r in state.roles.values()
            if r.login
            and not r.superuser
            and r.name not in kept
            and r.name not in reading
            and not r.name.startswith("pg_")
        ),
    )
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
    if len(roles) * len(relations) > limit and len(roles) + len(relations) > limit:
        # Beyond the limit the probe samples roles (see _probe_pairs): only the sample need be settable.
        roles = sorted(random.SystemRandom().sample(roles, max(1, limit - len(relations))))
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

HOLDERS_Q = f"""
SELECT c.oid, a.grantee FROM pg_class c, aclexplode({detoasted(RELACL)}) a
WHERE c.oid = ANY(%(rels)s::oid[])
  AND a.privilege_type = ANY(CASE WHEN c.relkind = 'S' THEN %(seq)s::text[] ELSE %(rel)s::text[] END)
UNION
SELECT at.attrelid, a.grantee FROM pg_attribute at, aclexplode({detoasted("at.attacl")}) a
WHERE at.attrelid = ANY(%(rels)s::oid[]) AND at.attnum > 0 AND NOT at.attisdropped AND at.attacl IS NOT NULL
  AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
UNION
SELECT p.oid, a.grantee FROM pg_proc p, aclexplode({detoasted("coalesce(p.proacl, acldefault('f', p.proowner))")}) a
WHERE p.oid = ANY(%(funcs)s::oid[]) AND a.privilege_type = 'EXECUTE'
"""


async def still_privileged(
    conn: AsyncConnection[Any],
    state: State,
    asked: Mapping[str, AbstractSet[str]],
    objs: dict[str, Obj],
    *,
    kept: AbstractSet[str] = frozenset(),
    public: bool = False,
) -> list[tuple[str, str]]:
    """The (role, object) pairs, of the roles ``asked`` about each object, where the role still holds
    any privilege on the object. Roles in ``kept`` and roles no longer in the catalog are not asked
    about; ``public``: PUBLIC is asked about on every object too.

    Few pairs: each is asked of the privilege functions. Many (a company's scope): each object's
    remaining grantees are read from its ACL (the holders the privilege functions consult), every
    asked role is put to ``pg_has_role`` against each of them, and the pairs that may still hold a
    privilege (with superusers', and the predefined read/write-all roles' members', and PUBLIC's) go
    to the privilege functions for the final answer, with a random sample of the rest as a cross-check.
    """
    roles_now = state.roles

    def askable(role: str) -> bool:
        return (role == PUBLIC or role in roles_now) and role not in kept

    with_public = public and PUBLIC not in kept

    def every_pair() -> list[tuple[str, Obj]]:
        pairs: list[tuple[str, Obj]] = []
        for o, rs in sorted(asked.items()):
            named = {r for r in rs if askable(r)} | ({PUBLIC} if with_public else set())
            pairs += [(r, objs[o]) for r in sorted(named)]
        return pairs

    total = sum(len(roles) for roles in asked.values())
    if total <= EXACT_PAIRS:
        return await _privileged(conn, every_pair())
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
    asked_roles = {r for r in set().union(*asked.values()) if r != PUBLIC and askable(r)}
    if len(asked_roles) * len(grantees) > MEMBERSHIP_CALLS:
        return await _privileged(conn, every_pair())
    has: dict[str, set[int]] = defaultdict(set)
    for oid, name, _ in grantee_rows:
        if name in asked_roles:
            has[name].add(oid)
    if grantees:
        # Sorted by role, so the server's cache of one role's memberships serves each run of calls.
        cur = await conn.execute(
            "SELECT r, g FROM unnest(%s::text[]) r, unnest(%s::oid[]) g WHERE pg_has_role(r, g, 'USAGE')",
            (sorted(asked_roles), grantees),
        )
        for r, g in await cur.fetchall():
            has[r].add(g)
    superusers = {r.name for r in state.roles.values() if r.superuser}
    candidates: list[tuple[str, str]] = []
    rest: list[tuple[str, AbstractSet[str], set[str]]] = []  # (object, its asked roles, those already asked)
    for name, roles in sorted(asked.items()):
        if 0 in holders[name]:  # PUBLIC holds a privilege: every role does
            may = {r for r in roles if askable(r)}
        else:
            # The few roles that may hold a privilege, looked up in the asked ones (not the reverse:
            # an object's asked roles are thousands).
            holding = superusers | {r for r, gs in has.items() if not gs.isdisjoint(holders[name])}
            may = {r for r in holding if r in roles and askable(r)}
        if with_public or (PUBLIC in roles and askable(PUBLIC)):
            may.add(PUBLIC)
        candidates += [(r, name) for r in sorted(may)]
        rest.append((name, roles, may))
    sample = [(r, o) for r, o in _sample_pairs(rest, SAMPLED_PAIRS) if askable(r)]
    found = await _privileged(conn, [(r, objs[o]) for r, o in candidates + sample])
    missed = sorted(set(found) - set(candidates))
    if missed:
        # The privilege functions know a path the ACLs did not show: ask about every pair.
        log.error("privilege functions disagree with the ACLs; asking every pair", pairs=missed[:20])
        return await _privileged(conn, every_pair())
    return found


def _sample_pairs(groups: list[tuple[str, AbstractSet[str], set[str]]], size: int) -> list[tuple[str, str]]:
    """A uniform random sample of about ``size`` (role, object) pairs from (object, roles, roles left out)
    groups: picks that land on a role left out are dropped, not drawn again."""
    total = sum(len(roles) for _, roles, _ in groups)
    if not total or size <= 0:
        return []
    # Seeded from the system's entropy, so the sample cannot be foreseen; drawn by a fast generator.
    rng = random.Random(secrets.randbits(128))
    picks = sorted(rng.sample(range(total), min(size, total)))
    out: list[tuple[str, str]] = []
    start = 0
    it = iter(picks)
    pick = next(it, None)
    for obj, roles, left_out in groups:
        if pick is not None and pick < start + len(roles):
            listed = list(roles)
            while pick is not None and pick < start + len(roles):
                role = listed[pick - start]
                if role not in left_out:
                    out.append((role, obj))
                pick = next(it, None)
        start += len(roles)
    return out


# Who the ACL of a table created now names (its default privileges applied), with the predefined
# read/write-all roles, and every role that inherits from or can become one of them: the roles the
# privilege functions may answer yes for (the creator and its members own the table: left out).
FUTURE_HOLDERS_Q = f"""
WITH RECURSIVE t AS (
  SELECT c.oid, c.relowner, c.relacl FROM pg_class c WHERE c.relnamespace = %(nsp)s::oid AND c.relname = %(name)s
), seeds AS (
  SELECT a.grantee AS role FROM t, aclexplode({detoasted("coalesce(t.relacl, acldefault('r', t.relowner))")}) a
  WHERE a.grantee <> t.relowner AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
  UNION
  SELECT oid FROM pg_roles WHERE rolname = ANY(%(predefined)s::text[])
), reach(role) AS (
  SELECT role FROM seeds
  UNION
  SELECT m.member FROM pg_auth_members m JOIN reach ON m.roleid = reach.role
  WHERE m.inherit_option OR m.set_option
)
SELECT CASE WHEN role = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(role) END FROM reach
"""

FUTURE_READERS_Q = """
SELECT r FROM unnest(%s::text[]) r WHERE r <> %s
AND CASE WHEN r = 'PUBLIC' THEN true ELSE NOT pg_has_role(r, %s, 'USAGE') END
AND has_table_privilege(CASE WHEN r = 'PUBLIC' THEN 'public' ELSE r END,
    (SELECT c.oid FROM pg_class c WHERE c.relnamespace = %s::oid AND c.relname = %s),
    'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
"""


async def _future_table_access(conn: AsyncConnection[Any], state: State, kept: set[str]) -> list[RoleAccess]:
    """Create a table in the schema as each role whose default privileges apply there (inside the
    caller's rolled-back transaction) and ask who could read it.

    Every role is in question, not only former readers (a default privilege added after containment
    names anyone): the roles the new table's ACL reaches, through grants and memberships, are put to
    the privilege functions, and a random sample of the others as a cross-check; should one of those
    read it, every role is asked."""
    creators = {state.operator, state.schema_owner} | {d.creator for d in state.defacls}
    cur = await conn.execute(
        "SELECT r FROM unnest(%s::text[]) r WHERE pg_has_role(current_user, r, 'SET') "
        "AND has_schema_privilege(r, %s::oid, 'CREATE')",
        (sorted(creators), state.schema_oid),
    )
    creators = {r for (r,) in await cur.fetchall()}
    if not creators:
        return []
    everyone = [
        r.name
        for r in state.roles.values()
        if not r.superuser and r.name not in kept and r.name not in (READ_ALL, WRITE_ALL)
    ]
    eligible = set(everyone)
    out: list[RoleAccess] = []
    for creator in sorted(creators):
        name = f"pausegate_probe_{secrets.token_hex(6)}"
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(creator)))
        await conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(state.schema, name)))
        await conn.execute("RESET ROLE")
        cur = await conn.execute(
            FUTURE_HOLDERS_Q, {"nsp": state.schema_oid, "name": name, "predefined": [READ_ALL, WRITE_ALL]}
        )
        reached = {r for (r,) in await cur.fetchall()}
        named = sorted(r for r in reached if r in eligible)
        others = [r for r in everyone if r not in reached]
        sample = random.Random(secrets.randbits(128)).sample(others, min(SAMPLED_PAIRS, len(others)))
        params = (state.schema_oid, name)
        cur = await conn.execute(FUTURE_READERS_Q, ([PUBLIC, *named, *sample], creator, creator, *params))
        readers = [r for (r,) in await cur.fetchall()]
        if not set(readers) <= {PUBLIC, *named}:
            log.error("a new table is readable beyond what its ACL shows; asking every role",
                      roles=sorted(set(readers) - set(named))[:20])
            cur = await conn.execute(FUTURE_READERS_Q, ([PUBLIC, *sorted(everyone)], creator, creator, *params))
            readers = [r for (r,) in await cur.fetchall()]
        for role in readers:
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
