"""The access paths of a recorded exposure scope, and what one parsed statement does to them.

``scope_paths`` lists every path of the scopes (a SELECT grant on a dataset object or on what exposes
it, a membership, a view, materialized view or routine exposing the data, a default privilege, an
owner); ``effects`` reads one statement's tree (``copies_sql.parsed``: PostgreSQL's own parser,
bounded) and says which paths it opens and closes. Names are resolved as the server does: qualified
as written, unqualified through the session's search_path, onto the first schema holding a name the
scope knows. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pausegate.analysis.pg_nodes import node, string_value
from pausegate.models.access import ExposureScope
from pausegate.models.origins import PathKind

PUBLIC = "PUBLIC"
_READ_PRIVILEGES = frozenset({"select", "execute", "all", "all privileges"})
_EXPOSER_KINDS: dict[str, PathKind] = {"view": "view", "materialized_view": "matview", "function": "function"}
_BASE_KINDS = frozenset({"table", "partitioned_table", "foreign_table", "view", "materialized_view"})
_DROPPED: dict[str, tuple[PathKind, ...]] = {
    "OBJECT_VIEW": ("view",), "OBJECT_MATVIEW": ("matview",), "OBJECT_FUNCTION": ("function",),
    "OBJECT_ROUTINE": ("function",), "OBJECT_PROCEDURE": ("function",), "OBJECT_TABLE": (),
    "OBJECT_FOREIGN_TABLE": ()}


@dataclass(frozen=True)
class ScopePath:
    kind: PathKind
    object: str
    role: str
    via: str | None = None
    dataset: str | None = None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.object}:{self.role}"


def _routine(name: str) -> str:
    return name.partition("(")[0]


@dataclass
class Paths:
    """The scope's paths, indexed the ways statements name them."""

    paths: dict[str, ScopePath] = field(default_factory=dict)
    relations: dict[str, str] = field(default_factory=dict)  # schema.name -> kind (table, view, function...)
    names: set[str] = field(default_factory=set)  # every relation, routine and role name (needles)
    groups: set[str] = field(default_factory=set)  # roles with members
    logins: set[str] = field(default_factory=set)
    members: dict[str, set[str]] = field(default_factory=dict)  # member -> groups (direct)
    owners: dict[str, str] = field(default_factory=dict)
    break_glass: set[str] = field(default_factory=set)
    intended: set[str] = field(default_factory=set)  # roles meant to read (the runbook's allowed grantees)
    shadows: set[str] = field(default_factory=set)  # other relations named like one of the scope's (schema.name)
    grantors: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # object -> grantor -> grantees

    def add(self, path: ScopePath) -> None:
        self.paths.setdefault(path.id, path)

    def company_wide(self, path: ScopePath) -> bool:
        # a default privilege opens tables made later: those tables' own grants are the paths to them
        if path.role in self.break_glass | self.intended or path.kind != "grant":
            return False
        return path.role == PUBLIC or (path.role in self.groups and path.role not in self.logins)

    def exposing(self, path: ScopePath) -> bool:
        """Whether the path is part of the exposure: not an owner's own access, not a role meant to read."""
        return path.kind != "owner" and path.role not in self.break_glass | self.intended

    def needles(self) -> set[str]:
        """What a statement changing a path must hold, to search a log for: a relation's name (GRANT ON,
        CREATE VIEW ... FROM, ALTER TABLE, DROP), a group's (GRANT group TO, CREATE ROLE ... IN ROLE), or
        "schema" / "privileges" (ON ALL TABLES IN SCHEMA, ALTER DEFAULT PRIVILEGES). Login roles are left out:
        every line a role runs names it in its ``user`` field."""
        return {r.rpartition(".")[2] for r in self.relations} | self.groups | {"schema", "privileges"}

    def groups_of(self, user: str) -> set[str]:
        """Every role ``user`` is a member of, directly or not (as recorded)."""
        out, todo = set[str](), [user]
        while todo:
            for g in self.members.get(todo.pop(), ()):
                if g not in out:
                    out.add(g)
                    todo.append(g)
        return out


def scope_paths(scopes: Iterable[ExposureScope], intended: Iterable[str] = ()) -> Paths:
    """Every path of the recorded scopes; ``intended``: roles meant to read, whose grants are no leak."""
    out = Paths(intended=set(intended))
    for scope in scopes:
        out.break_glass.update(scope.break_glass_roles)
        out.logins.update(r.name for r in scope.roles if r.login)
        for obj in scope.object_details:
            name = _routine(obj.name) if obj.kind == "function" else obj.name
            out.relations[name] = obj.kind
            out.owners[name] = obj.owner
            out.names.update((name.rpartition(".")[2], obj.owner))
            if obj.kind in _EXPOSER_KINDS and obj.depends_on:  # a view or routine reaching the dataset's tables
                out.add(ScopePath(_EXPOSER_KINDS[obj.kind], name, obj.owner, ", ".join(obj.depends_on),
                                  scope.dataset))
            elif obj.kind in _BASE_KINDS:
                out.add(ScopePath("owner", name, obj.owner, None, scope.dataset))
        for g in scope.grants:
            if g.privilege.lower() not in _READ_PRIVILEGES:
                continue
            out.names.add(g.grantee)
            if g.object_kind == "default_privileges":
                out.add(ScopePath("default_privileges", g.object, g.grantee, None, scope.dataset))
            elif g.object_kind != "schema":
                target = _routine(g.object) if g.object_kind == "function" else g.object
                if out.owners.get(target) == g.grantee:
                    continue  # the owner's own entry in the ACL: the owner path, not a grant
                out.add(ScopePath("grant", target, g.grantee, g.column and f"column {g.column}", scope.dataset))
                out.grantors.setdefault(target, {}).setdefault(g.grantor, set()).add(g.grantee)
        for m in scope.memberships:
            out.groups.add(m.role)
            out.members.setdefault(m.member, set()).add(m.role)
            out.names.update((m.role, m.member))
            out.add(ScopePath("membership", m.role, m.member, m.role, scope.dataset))
    # a statement may name a path only by its schema (ON ALL TABLES IN SCHEMA, ALTER DEFAULT PRIVILEGES IN
    # SCHEMA) or by no name at all (ALTER DEFAULT PRIVILEGES ... TO PUBLIC): these words find them
    out.names.update(("schema", "privileges"))
    out.names.discard(PUBLIC)
    out.names.discard("")
    return out


# ---------------------------------------------------------------- one statement


@dataclass(frozen=True)
class Effect:
    """A path a statement opens (``opens``) or closes."""

    path: str
    opens: bool


@dataclass
class Session:
    """What a session's earlier statements set: its search_path, its role, its open transaction."""

    path: tuple[str, ...] = ("$user", "public")
    role: str | None = None
    in_tx: bool = False
    held: list[tuple[Any, ...]] = field(default_factory=list)  # effects of the open transaction


def _role(spec: Any, current: str) -> str | None:
    body = node(spec)[1] if "RoleSpec" in (spec or {}) else spec or {}
    kind = body.get("roletype")
    if kind == "ROLESPEC_PUBLIC":
        return PUBLIC
    if kind == "ROLESPEC_CSTRING":
        return str(body.get("rolename", "")) or None
    if kind in ("ROLESPEC_CURRENT_USER", "ROLESPEC_CURRENT_ROLE", "ROLESPEC_SESSION_USER"):
        return current
    return None


def _list(value: Any) -> list[Any]:
    tag, body = node(value)
    return list(body.get("items", ())) if tag == "List" else list(value) if isinstance(value, list) else []


class Resolver:
    """Names as the server resolves them, against what the scope knows."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def relation(self, schema: str | None, name: str, path: Sequence[str], user: str) -> str | None:
        """schema.name a statement's name reaches: the first schema of the path holding the name (a relation
        of another schema named alike, ``Paths.shadows``, hides the scope's one behind it)."""
        if schema:
            return f"{schema}.{name}"
        for s in path:
            s = user if s == "$user" else s
            if f"{s}.{name}" in self.paths.relations:
                return f"{s}.{name}"
            if f"{s}.{name}" in self.paths.shadows:
                return None
        return None

    @staticmethod
    def created(schema: str | None, name: str, path: Sequence[str], user: str) -> str:
        """Where CREATE puts an unqualified name: the first schema of the path (``$user`` as the user)."""
        if schema:
            return f"{schema}.{name}"
        first = next((user if s == "$user" else s for s in path if s), "public")
        return f"{first}.{name}"

    def effects(self, tag: str, body: Mapping[str, Any], session: Session, user: str) -> list[Effect]:
        """The paths the statement opens and closes (tracked state of ``session`` updated)."""
        role = session.role or user
        out: list[Effect] = []
        if tag == "VariableSetStmt":
            self._set(body, session)
        elif tag == "GrantStmt":
            out += self._grant(body, session, role)
        elif tag == "AlterDefaultPrivilegesStmt":
            out += self._defaults(body, role)
        elif tag == "GrantRoleStmt":
            opens = bool(body.get("is_grant"))
            if opens or not body.get("opt"):  # REVOKE ADMIN OPTION FOR keeps the membership
                for g in body.get("granted_roles", ()):
                    group = str(node(g)[1].get("priv_name", ""))
                    for spec in body.get("grantee_roles", ()):
                        member = _role(spec, role)
                        if member:
                            out.append(Effect(f"membership:{group}:{member}", opens))
        elif tag == "CreateRoleStmt":
            new = str(body.get("role", ""))
            for opt in body.get("options", ()):
                elem = node(opt)[1]
                for spec in _list(elem.get("arg")):
                    other = _role(spec, role)
                    if other and elem.get("defname") == "addroleto":
                        out.append(Effect(f"membership:{other}:{new}", True))
                    elif other and elem.get("defname") in ("rolemembers", "adminmembers"):
                        out.append(Effect(f"membership:{new}:{other}", True))
        elif tag in ("ViewStmt", "CreateTableAsStmt", "CreateFunctionStmt"):
            out += self._created(tag, body, session, user, role)
        elif tag == "CreateStmt":
            rel = body.get("relation") or {}
            self._shadow(self.created(rel.get("schemaname"), str(rel.get("relname", "")), session.path, role))
        elif tag == "DropStmt":
            out += self._dropped(body, session, user)
        elif tag == "AlterTableStmt":
            rel = body.get("relation") or {}
            name = self.relation(rel.get("schemaname"), str(rel.get("relname", "")), session.path, user)
            for cmd in body.get("cmds", ()):
                c = node(cmd)[1]
                if name is None:
                    break
                if c.get("subtype") == "AT_ChangeOwner":
                    owner = _role(c.get("newowner"), role)
                    out += [Effect(p.id, False) for p in self._about(name, ("owner",)) if p.role != owner]
                    if owner:
                        out.append(Effect(f"owner:{name}:{owner}", True))
                elif c.get("subtype") in ("AT_DisableRowSecurity", "AT_EnableRowSecurity"):
                    out.append(Effect(f"rls_off:{name}:{self.paths.owners.get(name, '')}",
                                      c["subtype"] == "AT_DisableRowSecurity"))
        return out

    def _set(self, body: Mapping[str, Any], session: Session) -> None:
        name = str(body.get("name", "")).lower()
        kind = body.get("kind")
        reset = kind in ("VAR_RESET", "VAR_RESET_ALL", "VAR_SET_DEFAULT")
        if name == "search_path" or kind == "VAR_RESET_ALL":
            session.path = ("$user", "public") if reset else tuple(string_value(a) or "" for a in body.get("args", ()))
        if name == "role" or kind == "VAR_RESET_ALL":
            value = None if reset else next((string_value(a) for a in body.get("args", ())), None)
            session.role = None if value in (None, "none") else value

    def _grant(self, body: Mapping[str, Any], session: Session, role: str) -> list[Effect]:
        privileges = [str(node(p)[1].get("priv_name", "")).lower() for p in body.get("privileges", ())]
        opens = bool(body.get("is_grant"))
        reads = not privileges or any(p in _READ_PRIVILEGES for p in privileges)
        if not reads or (not opens and body.get("grant_option")):
            return []
        objects: list[str] = []
        if body.get("targtype") == "ACL_TARGET_ALL_IN_SCHEMA":
            schemas = {string_value(o) for o in body.get("objects", ())}
            objects = [n for n, k in self.paths.relations.items() if n.rpartition(".")[0] in schemas
                       and (k == "function") == (body.get("objtype") in ("OBJECT_FUNCTION", "OBJECT_ROUTINE"))]
        elif body.get("objtype") in ("OBJECT_TABLE", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE"):
            for o in body.get("objects", ()):
                rv = node(o)[1] if "RangeVar" in o else o
                name = self.relation(rv.get("schemaname"), str(rv.get("relname", "")), session.path, role)
                if name:
                    objects.append(name)
        elif body.get("objtype") in ("OBJECT_FUNCTION", "OBJECT_ROUTINE", "OBJECT_PROCEDURE"):
            for o in body.get("objects", ()):
                parts = [p for p in map(string_value, node(o)[1].get("objname", ())) if p]
                if parts:
                    objects.append(self._routine(parts, session.path, role))
        grantees = [g for g in (_role(s, role) for s in body.get("grantees", ())) if g]
        out = [Effect(f"grant:{o}:{g}", opens) for o in objects for g in grantees]
        if not opens and body.get("behavior") == "DROP_CASCADE":
            out += [Effect(f"grant:{o}:{g}", False) for o in objects for g in self._below(o, grantees)]
        return out

    def _below(self, obj: str, grantees: Iterable[str]) -> set[str]:
        """The grantees of grants made, directly or down a chain, by ``grantees`` (what CASCADE revokes)."""
        by = self.paths.grantors.get(obj, {})
        out, todo = set[str](), list(grantees)
        while todo:
            for g in by.get(todo.pop(), ()):
                if g not in out:
                    out.add(g)
                    todo.append(g)
        return out

    def _routine(self, parts: list[str], path: Sequence[str], user: str) -> str:
        if len(parts) > 1:
            return f"{parts[-2]}.{parts[-1]}"
        return self.relation(None, parts[-1], path, user) or f"public.{parts[-1]}"

    def _defaults(self, body: Mapping[str, Any], role: str) -> list[Effect]:
        creators, schemas = [role], ["*"]
        for opt in body.get("options", ()):
            elem = node(opt)[1]
            if elem.get("defname") == "roles":
                creators = [r for r in (_role(s, role) for s in _list(elem.get("arg"))) if r]
            elif elem.get("defname") == "schemas":
                schemas = [s for s in map(string_value, _list(elem.get("arg"))) if s]
        action = body.get("action") or {}
        if action.get("objtype") not in ("OBJECT_TABLE", None):
            return []
        privileges = [str(node(p)[1].get("priv_name", "")).lower() for p in action.get("privileges", ())]
        if privileges and not any(p in _READ_PRIVILEGES for p in privileges):
            return []
        grantees = [g for g in (_role(s, role) for s in action.get("grantees", ())) if g]
        return [Effect(f"default_privileges:{s}.<future tables of {c}>:{g}", bool(action.get("is_grant")))
                for s in schemas for c in creators for g in grantees]

    def _shadow(self, name: str) -> None:
        """A relation made outside the scope with a name the scope has: later unqualified names may reach it."""
        if name not in self.paths.relations and name.rpartition(".")[2] in {
                r.rpartition(".")[2] for r in self.paths.relations}:
            self.paths.shadows.add(name)

    def _about(self, name: str, kinds: Iterable[str]) -> list[ScopePath]:
        wanted = set(kinds)
        return [p for p in self.paths.paths.values() if p.object == name and p.kind in wanted]

    def _created(self, tag: str, body: Mapping[str, Any], session: Session, user: str, role: str) -> list[Effect]:
        if tag == "CreateFunctionStmt":
            parts = [p for p in map(string_value, body.get("funcname", ())) if p]
            name = self._routine(parts, session.path, role) if parts else None
            kind: PathKind = "function"
        else:
            if tag == "CreateTableAsStmt" and body.get("objtype") != "OBJECT_MATVIEW":
                return []
            rv = body.get("view") if tag == "ViewStmt" else (body.get("into") or {}).get("rel")
            rv = rv or {}
            name = self.created(rv.get("schemaname"), str(rv.get("relname", "")), session.path, role)
            kind = "view" if tag == "ViewStmt" else "matview"
        if not name:
            return []
        self._shadow(name)
        # CREATE OR REPLACE keeps the view's owner; a new one is owned by the role in force
        owner = self.paths.owners.get(name, role) if body.get("replace") else role
        return [Effect(f"{kind}:{name}:{owner}", True)]

    def _dropped(self, body: Mapping[str, Any], session: Session, user: str) -> list[Effect]:
        kinds = _DROPPED.get(str(body.get("removeType", "")))
        if kinds is None:
            return []
        out: list[Effect] = []
        for obj in body.get("objects", ()):
            tag, inner = node(obj)
            if tag == "ObjectWithArgs":
                parts = [p for p in map(string_value, inner.get("objname", ())) if p]
            else:
                parts = [p for p in map(string_value, _list(obj)) if p]
            if not parts:
                continue
            name = (self._routine(parts, session.path, user) if "function" in kinds
                    else self.relation(parts[-2] if len(parts) > 1 else None, parts[-1], session.path, user))
            if name:
                # a dropped object takes its grants with it
                out += [Effect(p.id, False) for p in self._about(name, (*kinds, "grant", "owner", "rls_off"))]
        return out
