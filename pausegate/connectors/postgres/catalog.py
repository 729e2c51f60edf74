"""Reading who can reach a dataset from PostgreSQL's catalogs, and turning that into access paths.

Loading is async (one round trip per catalog); everything after loading is pure so the revoke
planner and the access computation can be tested and reasoned about without a database.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection, sql

from pausegate.errors import TargetRejectedError
from pausegate.models.access import AccessPath, MembershipRecord, ReadPath, RoleAccess, RoleRecord
from pausegate.models.runbook import DatasetSpec

PUBLIC = "PUBLIC"
READ_ALL = "pg_read_all_data"
WRITE_ALL = "pg_write_all_data"

RELKINDS = {
    "r": "table",
    "p": "partitioned_table",
    "v": "view",
    "m": "materialized_view",
    "f": "foreign_table",
    "S": "sequence",
}
RELATION_KINDS = frozenset({"table", "partitioned_table", "view", "materialized_view", "foreign_table"})
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")

# When several paths explain one (role, object), the one reported is the least revocable.
PATH_PRIORITY = {
    AccessPath.SUPERUSER: 0,
    AccessPath.OWNER: 1,
    AccessPath.PREDEFINED: 2,
    AccessPath.DIRECT: 3,
    AccessPath.PUBLIC: 4,
    AccessPath.MEMBERSHIP: 5,
    AccessPath.FUNCTION: 6,
    AccessPath.DEFAULT_PRIVILEGES: 7,
    AccessPath.OTHER: 8,
}


@dataclass
class Obj:
    oid: int
    schema: str
    name: str
    kind: str
    owner: str
    rls: bool = False
    depends_on: list[str] = field(default_factory=list)
    arg_types: list[str] = field(default_factory=list)  # functions only

    @property
    def qname(self) -> str:
        if self.kind == "function":
            return f"{self.schema}.{self.name}({', '.join(self.arg_types)})"
        return f"{self.schema}.{self.name}"


class Acl(NamedTuple):
    """One aclexplode() row: on a relation/sequence/function (oid) or the schema (oid = schema oid).
    Tuples: a company's dataset has hundreds of thousands, read on every revoke."""

    oid: int
    grantee: str  # role name or PUBLIC
    grantor: str
    privilege: str
    grantable: bool
    column: str | None = None


@dataclass(frozen=True)
class DefAcl:
    creator: str
    in_schema: bool
    objtype: str  # 'r' tables, 'S' sequences
    grantee: str
    grantor: str
    privilege: str
    grantable: bool


class Role(NamedTuple):
    """A pg_roles row (``RoleRecord``'s fields; a company has tens of thousands, read on every revoke)."""

    name: str
    login: bool = False
    superuser: bool = False
    bypassrls: bool = False

    def record(self) -> RoleRecord:
        return RoleRecord.model_construct(
            name=self.name, login=self.login, superuser=self.superuser, bypassrls=self.bypassrls
        )


class Edge(NamedTuple):
    """A pg_auth_members row: ``member`` is a member of ``role`` (``MembershipRecord``'s fields)."""

    role: str
    member: str
    grantor: str
    inherit: bool = True
    set: bool = True
    admin: bool = False

    def record(self) -> MembershipRecord:
        return MembershipRecord.model_construct(
            role=self.role, member=self.member, grantor=self.grantor, inherit=self.inherit, set=self.set,
            admin=self.admin,
        )


@dataclass
class State:
    """The catalog as it stands for one dataset."""

    schema: str
    schema_oid: int
    schema_owner: str
    whole_schema: bool
    operator: str
    operator_super: bool
    server_version: str
    objects: list[Obj]
    acls: list[Acl]
    schema_acls: list[Acl]
    defacls: list[DefAcl]
    roles: dict[str, Role]
    edges: list[Edge]

    def by_oid(self) -> dict[int, Obj]:
        return {o.oid: o for o in self.objects}

    def superusers(self) -> list[str]:
        return sorted(r.name for r in self.roles.values() if r.superuser)


SCHEMA_Q = """
SELECT n.oid, pg_get_userbyid(n.nspowner), current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       current_setting('server_version')
FROM pg_namespace n WHERE n.nspname = %(schema)s
"""

RELATIONS_Q = """
WITH RECURSIVE base AS (
  SELECT c.oid FROM pg_class c
  WHERE c.relnamespace = %(nsp)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND (cardinality(%(tables)s::text[]) = 0 OR c.relname = ANY(%(tables)s::text[]))
), dependents(oid, base_oid) AS (
  SELECT oid, oid FROM base
  UNION
  SELECT r.ev_class, d0.base_oid FROM dependents d0
  JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = d0.oid
                  AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid
  WHERE r.ev_class <> d0.oid
), seqs AS (
  SELECT d.objid AS oid, d.refobjid AS base_oid
  FROM pg_depend d JOIN base b ON d.refobjid = b.oid
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  UNION
  SELECT c.oid, NULL FROM pg_class c
  WHERE c.relnamespace = %(nsp)s AND c.relkind = 'S' AND cardinality(%(tables)s::text[]) = 0
), alls AS (SELECT oid, base_oid FROM dependents UNION SELECT oid, base_oid FROM seqs)
SELECT c.oid, n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner), c.relrowsecurity,
       coalesce(array_agg(DISTINCT bn.nspname || '.' || bc.relname)
                FILTER (WHERE a.base_oid IS NOT NULL AND a.base_oid <> c.oid), '{}')
FROM alls a JOIN pg_class c ON c.oid = a.oid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class bc ON bc.oid = a.base_oid LEFT JOIN pg_namespace bn ON bn.oid = bc.relnamespace
GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 2, 3
"""

# SECURITY DEFINER routines run with their owner's privileges: EXECUTE on one that reads a dataset
# table is a read path. Bodies in quoted strings leave no pg_depend rows, hence the text match too.
FUNCTIONS_Q = """
SELECT p.oid, n.nspname, p.proname, pg_get_userbyid(p.proowner),
       ARRAY(SELECT format_type(t, NULL)
             FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i) ORDER BY i),
       array_agg(DISTINCT cn.nspname || '.' || c.relname)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_class c ON c.oid = ANY(%(rels)s::oid[]) JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND has_table_privilege(p.proowner, c.oid, 'SELECT')
  AND (EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                 AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)
       OR position(lower(c.relname) IN lower(p.prosrc)) > 0)
GROUP BY 1, 2, 3, 4
"""



def detoasted(acl: str) -> str:
    """SQL for the ACL array ``acl`` (an expression) as a value in memory: ``aclexplode`` reads its
    argument afresh for every row it returns, and an ACL of a few hundred grantees is stored out of
    line (TOAST), so exploding it as stored costs time quadratic in its length (a second for a
    company's dataset). Slicing copies it once; an empty ACL (an owner who revoked their own
    privileges) has no slice aclexplode accepts and is exploded as it is."""
    return f"(CASE WHEN cardinality({acl}) > 0 THEN ({acl})[1:] ELSE {acl} END)"


RELACL = """coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))"""

ACL_Q = f"""
SELECT c.oid, a.grantee, a.grantor, a.privilege_type, a.is_grantable, NULL::text, false
FROM pg_class c, aclexplode({detoasted(RELACL)}) a
WHERE c.oid = ANY(%(rels)s::oid[])
UNION ALL
SELECT at.attrelid, a.grantee, a.grantor, a.privilege_type, a.is_grantable, at.attname::text, false
FROM pg_attribute at, aclexplode({detoasted("at.attacl")}) a
WHERE at.attrelid = ANY(%(rels)s::oid[]) AND at.attnum > 0 AND NOT at.attisdropped AND at.attacl IS NOT NULL
UNION ALL
SELECT p.oid, a.grantee, a.grantor, a.privilege_type, a.is_grantable, NULL::text, false
FROM pg_proc p, aclexplode({detoasted("coalesce(p.proacl, acldefault('f', p.proowner))")}) a
WHERE p.oid = ANY(%(funcs)s::oid[])
UNION ALL
SELECT n.oid, a.grantee, a.grantor, a.privilege_type, a.is_grantable, NULL::text, true
FROM pg_namespace n, aclexplode({detoasted("coalesce(n.nspacl, acldefault('n', n.nspowner))")}) a
WHERE n.oid = %(nsp)s
"""

DEFACL_Q = f"""
SELECT pg_get_userbyid(d.defaclrole), d.defaclnamespace <> 0, d.defaclobjtype::text,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
       pg_get_userbyid(a.grantor), a.privilege_type, a.is_grantable
FROM pg_default_acl d, aclexplode({detoasted("d.defaclacl")}) a
WHERE d.defaclnamespace IN (%(nsp)s, 0) AND d.defaclobjtype IN ('r', 'S')
"""

SCHEMA_RELATIONS_Q = """
SELECT coalesce(array_agg(relname::text), '{}') FROM pg_class
WHERE relnamespace = %(nsp)s AND relkind IN ('r', 'p', 'v', 'm', 'f')
"""

ROLES_Q = "SELECT oid, rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles"

EDGES_Q = "SELECT roleid, member, grantor, inherit_option, set_option, admin_option FROM pg_auth_members"


async def _rows(conn: AsyncConnection[Any], query: str, params: dict[str, Any] | None = None) -> list[Any]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def load_state(conn: AsyncConnection[Any], spec: DatasetSpec, *, strict: bool = True) -> State:
    """Read everything about the dataset's access. ``strict``: a listed table that does not exist is an
    error (recording the scope); otherwise it is skipped (a dropped table has no access left to close)."""
    head = await _rows(conn, SCHEMA_Q, {"schema": spec.schema_name})
    if not head:
        raise TargetRejectedError(f"dataset {spec.name}: schema {spec.schema_name!r} does not exist")
    nsp, schema_owner, operator, operator_super, version = head[0]
    version_num = int((await _rows(conn, "SHOW server_version_num"))[0][0])
    if version_num < 160000:
        raise TargetRejectedError(f"PostgreSQL {version} is not supported (16 or later is needed)")
    rel_rows = await _rows(conn, RELATIONS_Q, {"nsp": nsp, "tables": spec.tables})
    objects = [
        Obj(
            oid=r[0],
            schema=r[1],
            name=r[2],
            kind=RELKINDS[r[3]],
            owner=r[4],
            rls=r[5],
            depends_on=sorted(r[6]),
        )
        for r in rel_rows
    ]
    found = {o.name for o in objects if o.schema == spec.schema_name and o.kind in RELATION_KINDS}
    missing = sorted(set(spec.tables) - found)
    if missing and strict:
        raise TargetRejectedError(
            f"dataset {spec.name}: {', '.join(missing)} not found in schema {spec.schema_name!r}"
        )
    rel_oids = [o.oid for o in objects if o.kind in RELATION_KINDS]
    # Listing every relation of the schema is the same as naming the schema: USAGE then goes too.
    in_schema = (await _rows(conn, SCHEMA_RELATIONS_Q, {"nsp": nsp}))[0][0]
    whole_schema = not spec.tables or set(spec.tables) >= set(in_schema)
    for r in await _rows(conn, FUNCTIONS_Q, {"rels": rel_oids}):
        objects.append(
            Obj(
                oid=r[0],
                schema=r[1],
                name=r[2],
                kind="function",
                owner=r[3],
                arg_types=list(r[4]),
                depends_on=sorted(r[5]),
            )
        )
    all_rel = [o.oid for o in objects if o.kind != "function"]
    funcs = [o.oid for o in objects if o.kind == "function"]
    role_rows = await _rows(conn, ROLES_Q)
    # Grantees and grantors come as oids and are named here: a company's ACLs hold hundreds of
    # thousands of entries, and naming them in the query doubled its time.
    names = {r[0]: r[1] for r in role_rows}
    names[0] = PUBLIC

    def name(oid: int) -> str:
        found = names.get(oid)
        return found if found is not None else f"unknown (OID={oid})"  # as pg_get_userbyid says

    acls: list[Acl] = []
    schema_acls: list[Acl] = []
    for r in await _rows(conn, ACL_Q, {"rels": all_rel, "funcs": funcs, "nsp": nsp}):
        if r[6]:  # the schema itself
            schema_acls.append(Acl(r[0], name(r[1]), name(r[2]), r[3], r[4]))
        else:
            acls.append(Acl(r[0], name(r[1]), name(r[2]), r[3], r[4], r[5]))
    defacls = [
        DefAcl(
            creator=r[0],
            in_schema=r[1],
            objtype=r[2],
            grantee=r[3],
            grantor=r[4],
            privilege=r[5],
            grantable=r[6],
        )
        for r in await _rows(conn, DEFACL_Q, {"nsp": nsp})
    ]
    roles = {r[1]: Role(r[1], r[2], r[3], r[4]) for r in role_rows}
    edges = [Edge(name(r[0]), name(r[1]), name(r[2]), r[3], r[4], r[5]) for r in await _rows(conn, EDGES_Q)]
    return State(
        schema=spec.schema_name,
        schema_oid=nsp,
        schema_owner=schema_owner,
        whole_schema=whole_schema,
        operator=operator,
        operator_super=bool(operator_super),
        server_version=version,
        objects=objects,
        acls=acls,
        schema_acls=schema_acls,
        defacls=defacls,
        roles=roles,
        edges=edges,
    )


def object_holders(state: State) -> Holders:
    """object oid -> (holder, path) -> privileges: who holds each object's privileges directly (a
    grant, PUBLIC, ownership, superuser, the predefined read/write-all roles), before membership."""
    roles = state.roles
    by_oid = state.by_oid()
    holders: Holders = defaultdict(lambda: defaultdict(set))
    for acl in state.acls:
        obj = by_oid.get(acl.oid)
        if obj is None:
            continue
        priv = f"{acl.privilege}({acl.column})" if acl.column else acl.privilege
        if acl.grantee == PUBLIC:
            holders[acl.oid][(PUBLIC, AccessPath.PUBLIC)].add(priv)
        elif acl.grantee == obj.owner:
            holders[acl.oid][(acl.grantee, AccessPath.OWNER)].add(priv)
        else:
            path = AccessPath.FUNCTION if obj.kind == "function" else AccessPath.DIRECT
            holders[acl.oid][(acl.grantee, path)].add(priv)
    superusers = state.superusers()
    for obj in state.objects:
        holders[obj.oid].setdefault((obj.owner, AccessPath.OWNER), set()).add("ALL")
        for su in superusers:
            holders[obj.oid][(su, AccessPath.SUPERUSER)].add("ALL")
        if obj.kind != "function":
            if READ_ALL in roles:
                holders[obj.oid][(READ_ALL, AccessPath.PREDEFINED)].add("SELECT")
            if WRITE_ALL in roles and obj.kind != "sequence":
                holders[obj.oid][(WRITE_ALL, AccessPath.PREDEFINED)].update({"INSERT", "UPDATE", "DELETE"})
    return holders


def members_closure(edges: Iterable[Edge], *, set_only: bool = False) -> dict[str, set[str]]:
    """role -> every role that can use its privileges (inherit) or become it (SET), transitively."""
    direct: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        if e.set if set_only else (e.inherit or e.set):
            direct[e.role].append(e.member)
    cache: dict[str, set[str]] = {}

    def walk(role: str) -> set[str]:
        if role in cache:
            return cache[role]
        seen: set[str] = set()
        queue = deque(direct.get(role, ()))
        while queue:
            m = queue.popleft()
            if m in seen or m == role:
                continue
            seen.add(m)
            queue.extend(direct.get(m, ()))
        cache[role] = seen
        return seen

    return {role: walk(role) for role in direct}


# (role, object, path, via, login, privileges): a RoleAccess's fields, without building 10^6 models.
AccessRow = tuple[str, str, AccessPath, str | None, bool, list[str]]


def compute_access(state: State) -> list[RoleAccess]:
    """Every (role, object, path, via) by which a role reaches a dataset object, login roles expanded."""
    return [
        RoleAccess.model_construct(role=role, object=obj, path=path, via=via, login=login, privileges=privs)
        for role, obj, path, via, login, privs in access_rows(state)
    ]


Holders = dict[int, dict[tuple[str, AccessPath], set[str]]]


def access_rows(state: State) -> list[AccessRow]:
    """``compute_access`` as rows, in the same order."""
    roles = state.roles
    closure = members_closure(state.edges)
    set_closure = members_closure(state.edges, set_only=True)
    by_oid = state.by_oid()
    holders = object_holders(state)

    # A company's scope has about a million (role, object) paths: keys hold plain strings (an enum
    # hashes in Python) and privilege sets are shared frozensets, built once per holder.
    out: dict[tuple[str, str, str, str | None], frozenset[str]] = {}
    get = out.get
    for oid, by_holder in holders.items():
        qname = by_oid[oid].qname
        for (holder, path), held in by_holder.items():
            privs = frozenset(held)
            # A predefined role is not a reader itself; its members are.
            if path is not AccessPath.PREDEFINED:
                key: tuple[str, str, str, str | None] = (holder, qname, path.value, None)
                out[key] = get(key, frozenset()) | privs
            if holder == PUBLIC:
                continue
            # A superuser's power passes only to roles that can SET ROLE to it; other privileges pass
            # through inheritance as well.
            members = (set_closure if path is AccessPath.SUPERUSER else closure).get(holder, ())
            member_path = (
                path.value
                if path in (AccessPath.OWNER, AccessPath.PREDEFINED, AccessPath.SUPERUSER)
                else AccessPath.MEMBERSHIP.value
            )
            for m in members:
                key = (m, qname, member_path, holder)
                before = get(key)
                out[key] = privs if before is None else before | privs

    for d in state.defacls:
        if d.grantee == d.creator:
            continue
        where = state.schema if d.in_schema else "*"
        kind = "tables" if d.objtype == "r" else "sequences"
        key = (d.grantee, f"{where}.<future {kind} of {d.creator}>", AccessPath.DEFAULT_PRIVILEGES.value, d.creator)
        out[key] = get(key, frozenset()) | {d.privilege}

    logins = {r.name for r in roles.values() if r.login}
    paths = {p.value: p for p in AccessPath}
    priority = {p.value: n for p, n in PATH_PRIORITY.items()}
    ordered: dict[frozenset[str], list[str]] = {}
    keys = sorted(out, key=lambda k: (k[1], k[0], priority[k[2]], k[3] or ""))
    result: list[AccessRow] = []
    append = result.append
    for key in keys:
        role, name, path_value, via = key
        privs = out[key]
        listed = ordered.get(privs)
        if listed is None:
            listed = ordered[privs] = sorted(privs)
        append((role, name, paths[path_value], via, role in logins, listed))
    return result


# ---------------------------------------------------------------- read paths (who saw what)

# Routines that read the dataset, whoever they run as: a reader names the routine, not the table.
# SECURITY DEFINER or not (an invoker's routine still reads the table for a caller who may), in
# any schema; matched like FUNCTIONS_Q (pg_depend, or the relation's name in the body), plus
# SECURITY DEFINER routines that build SQL at run time as an owner who can read the dataset.
READ_PATHS_Q = """
SELECT n.nspname, p.proname,
       coalesce(array_agg(DISTINCT c.oid) FILTER (WHERE c.oid IS NOT NULL), '{}'),
       EXISTS (SELECT 1 FROM unnest(%(markers)s::text[]) m(marker)
               WHERE position(m.marker IN lower(p.prosrc)) > 0)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
LEFT JOIN pg_class c ON c.oid = ANY(%(rels)s::oid[])
     AND (EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)
          OR position(lower(c.relname) IN lower(p.prosrc)) > 0)
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND l.lanname NOT IN ('c', 'internal')
GROUP BY p.oid, n.nspname, p.proname
HAVING count(c.oid) > 0
    OR (p.prosecdef
        AND EXISTS (SELECT 1 FROM unnest(%(markers)s::text[]) m(marker)
                    WHERE position(m.marker IN lower(p.prosrc)) > 0)
        AND EXISTS (SELECT 1 FROM unnest(%(rels)s::oid[]) r(oid)
                    WHERE has_table_privilege(p.proowner, r.oid, 'SELECT')))
"""

# Text in a routine's body that runs SQL built at run time (statement_reads' _OPAQUE, for bodies).
DYNAMIC_MARKERS = ("execute", "format(", "_to_xml", "ts_stat", "dblink", "crosstab", "connectby", "xpath_table",
                   "get_raw_page")


async def load_read_paths(conn: AsyncConnection[Any], spec: DatasetSpec) -> list[ReadPath]:
    """Every view, materialized view (in any schema, through any depth of views) and routine that
    reads the dataset's relations, with the base relations each reaches. Read-only."""
    head = await _rows(conn, SCHEMA_Q, {"schema": spec.schema_name})
    if not head:
        raise TargetRejectedError(f"dataset {spec.name}: schema {spec.schema_name!r} does not exist")
    rows = await _rows(conn, RELATIONS_Q, {"nsp": head[0][0], "tables": spec.tables})
    base = {
        r[0]
        for r in rows
        if r[1] == spec.schema_name and RELKINDS[r[3]] in RELATION_KINDS and (not spec.tables or r[2] in spec.tables)
    }
    names = {r[0]: f"{r[1]}.{r[2]}" for r in rows}
    reaches: dict[int, tuple[str, ...]] = {oid: (names[oid],) for oid in base}
    paths: list[ReadPath] = []
    for oid, _schema, _name, relkind, *_rest, depends_on in rows:
        kind = {"v": "view", "m": "matview"}.get(relkind)
        if oid in base or kind is None:
            continue
        reaches[oid] = tuple(sorted(depends_on))
        paths.append(ReadPath(name=names[oid], kind=kind, reaches=reaches[oid]))
    params = {"rels": sorted(reaches), "markers": list(DYNAMIC_MARKERS)}
    for schema, name, oids, dynamic in await _rows(conn, READ_PATHS_Q, params):
        reached = sorted({t for oid in oids for t in reaches.get(oid, ())})
        paths.append(ReadPath(name=f"{schema}.{name}", kind="function", reaches=tuple(reached), dynamic=bool(dynamic)))
    return paths


# ---------------------------------------------------------------- data subjects

SUBJECT_TABLES_Q = """
SELECT c.relname, bool_or(a.attname = %(time)s)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition
  AND a.attname IN (%(column)s, %(time)s)
  AND (cardinality(%(tables)s::text[]) = 0 OR c.relname = ANY(%(tables)s::text[]))
GROUP BY c.relname
HAVING bool_or(a.attname = %(column)s)
ORDER BY c.relname
"""


async def load_data_subjects(
    conn: AsyncConnection[Any], spec: DatasetSpec, column: str, time_column: str | None, until: datetime
) -> tuple[list[str], list[str]]:
    """(the dataset's tables holding ``column``, the distinct non-null values of ``column`` in their
    rows collected before ``until`` — by ``time_column`` where a table has it, else every row)."""
    tables = await _rows(
        conn, SUBJECT_TABLES_Q,
        {"schema": spec.schema_name, "column": column, "time": time_column or column, "tables": spec.tables},
    )
    if not tables:
        return [], []
    parts = []
    for table, timed in tables:
        select = sql.SQL("SELECT {col}::text FROM {schema}.{table} WHERE {col} IS NOT NULL").format(
            col=sql.Identifier(column), schema=sql.Identifier(spec.schema_name), table=sql.Identifier(table)
        )
        if timed and time_column:
            select = sql.SQL("{} AND {} < {}").format(select, sql.Identifier(time_column), sql.Literal(until))
        parts.append(select)
    # DISTINCT on the server: only distinct people cross the wire
    query = sql.SQL("SELECT DISTINCT s FROM ({}) AS rows(s) ORDER BY 1").format(sql.SQL(" UNION ALL ").join(parts))
    cur = await conn.execute(query)
    subjects = [r[0] for r in await cur.fetchall()]
    return [f"{spec.schema_name}.{t}" for t, _ in tables], subjects
