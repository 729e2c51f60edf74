"""The exposure scope, derived from the catalog as it stood: as a model, or as its JSON document.

A company's scope holds about a million access paths (fifty thousand people, each reaching a few
hundred tables through their groups). Building a pydantic model per path and dumping it again
costs far more than deriving the paths, so the document evidence stores is built from plain rows
(``scope_document``); it is the very document ``ExposureScope.model_dump(mode="json")`` gives for
the same catalog (tests compare the two on every fixture). What verification needs from the scope
comes with it as ``ScopeFacts``, so the paths are never held as models.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C encoder canonical JSON uses
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from pausegate.connectors.postgres.catalog import (
    PATH_PRIORITY,
    PUBLIC,
    AccessRow,
    Edge,
    Holders,
    Role,
    State,
    access_rows,
    members_closure,
    object_holders,
)
from pausegate.connectors.postgres.gcpause import gc_paused
from pausegate.connectors.scope_facts import ScopeFacts
from pausegate.models.access import (
    AccessPath,
    ExposureScope,
    GrantRecord,
    ObjectRecord,
    RoleAccess,
)
from pausegate.models.runbook import DatasetSpec


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


class Derived(NamedTuple):
    """What the facts and the document both derive from a catalog: the membership closures (inherit
    or SET; SET only) and each object's holders. Computed once when both are wanted."""

    closure: dict[str, set[str]]
    set_closure: dict[str, set[str]]
    holders: Holders


def derive(state: State) -> Derived:
    return Derived(members_closure(state.edges), members_closure(state.edges, set_only=True), object_holders(state))


def scope_facts(state: State, derived: Derived | None = None) -> ScopeFacts:
    """``ScopeFacts.of(scope_model(state))`` by set algebra over each object's holders and their
    membership closures: no path is built, so verification can start while the document is."""
    closure, set_closure, holders = derived or derive(state)
    by_oid = state.by_oid()
    logins = {r.name for r in state.roles.values() if r.login}
    facts = ScopeFacts(
        schema_grantees={a.grantee for a in state.schema_acls},
        grants=len(state.acls) + len(state.schema_acls) + len(state.defacls),
    )
    for oid, by_holder in holders.items():
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


def scope_document(spec: DatasetSpec, state: State, recorded_at: datetime, derived: Derived | None = None) -> bytes:
    """``canonical_json(scope_model(...).model_dump(mode="json"))``, without the models: the access
    paths are written as canonical JSON text straight from each object's holders and their
    membership closures, the rest through orjson (byte-identical to canonical JSON for plain values)."""
    with gc_paused():
        return _scope_document(spec, state, recorded_at, derived or derive(state))


def _scope_document(spec: DatasetSpec, state: State, recorded_at: datetime, derived: Derived) -> bytes:
    closure, set_closure, holders = derived
    by_oid = state.by_oid()
    logins = {r.name for r in state.roles.values() if r.login}
    encoded: dict[str, str] = {}

    def enc(text: str) -> str:
        found = encoded.get(text)
        if found is None:
            found = encoded[text] = encode_basestring(text)
        return found

    priority = {p: n for p, n in PATH_PRIORITY.items()}
    involved: set[str] = set()
    # (holder, member path) -> its members' rows, sorted, with every part that does not depend on
    # the object already encoded: a group's members are written once, not once per table.
    runs: dict[tuple[str, AccessPath], _Run] = {}
    listed: dict[frozenset[str], str] = {}  # privileges -> their JSON list
    no_members = _Run([], [], [])

    def member_run(holder: str, member_path: AccessPath) -> _Run:
        members = (set_closure if member_path is AccessPath.SUPERUSER else closure).get(holder, ())
        if not members:
            return no_members  # most holders are people granted directly
        involved.add(holder)
        involved.update(members)
        rank = priority[member_path]
        via = ',"via":' + encode_basestring(holder) + "}"
        ordered = sorted(members)
        return _Run(
            [(m, rank, holder) for m in ordered],
            ['{"login":true' if m in logins else '{"login":false' for m in ordered],
            [',"role":' + encode_basestring(m) + via for m in ordered],
        )

    # Per object: (role, priority, via, text) sorted as the tuples sort, which is the scope's order
    # (object, role, path priority, via); objects themselves in name order.
    per_object: list[tuple[str, bytes]] = []  # each object's access paths, encoded, as soon as it is done
    text_of = itemgetter(3)
    path_text = {p: encode_basestring(p.value) for p in AccessPath}
    own_tail: dict[str, str] = {}  # holder -> the end of its own row (role, no via): most holders are people
    for oid, by_holder in holders.items():
        name = by_oid[oid].qname
        object_part = ',"object":' + enc(name) + ',"path":'
        items: list[tuple[str, int, str, str]] = []
        append = items.append
        members: list[tuple[_Run, str]] = []  # (a holder's members, the object's part of their rows)
        for (holder, path), held in by_holder.items():
            key = frozenset(held)
            privileges = listed.get(key)
            if privileges is None:
                privileges = listed[key] = "[" + ",".join(enc(p) for p in sorted(held)) + "]"
            if path is not AccessPath.PREDEFINED:
                involved.add(holder)
                tail = own_tail.get(holder)
                if tail is None:
                    tail = own_tail[holder] = ',"role":' + enc(holder) + ',"via":null}'
                # _row's text, from parts encoded once
                append((holder, priority[path], "", ('{"login":true' if holder in logins else '{"login":false')
                        + object_part + path_text[path] + ',"privileges":' + privileges + tail))
            if holder == PUBLIC:
                continue
            member_path = path if path in (AccessPath.OWNER, AccessPath.PREDEFINED, AccessPath.SUPERUSER) else (
                AccessPath.MEMBERSHIP)
            if holder not in (set_closure if member_path is AccessPath.SUPERUSER else closure):
                continue  # no members
            run = runs.get((holder, member_path))
            if run is None:
                run = runs[(holder, member_path)] = member_run(holder, member_path)
            if run.keys:
                members.append((run, object_part + path_text[member_path] + ',"privileges":' + privileges))
        # The largest group's rows are written by joining its pre-encoded parts around the object's
        # part; every other row is built and sorted on its own, then merged into it by position.
        members.sort(key=lambda item: len(item[0].keys))
        largest = members.pop() if members else None
        for run, middle in members:
            rows = zip(run.keys, run.logins, run.tails, strict=True)
            items += [(k[0], k[1], k[2], login + middle + tail) for k, login, tail in rows]
        items.sort()
        text = ",".join(map(text_of, items)) if largest is None else _merged(largest[0], largest[1], items)
        per_object.append((name, text.encode()))
    defaults: dict[tuple[str, str, str], set[str]] = {}
    for d in state.defacls:
        if d.grantee == d.creator:
            continue
        where = state.schema if d.in_schema else "*"
        kind = "tables" if d.objtype == "r" else "sequences"
        defaults.setdefault((f"{where}.<future {kind} of {d.creator}>", d.grantee, d.creator), set()).add(d.privilege)
    by_name: dict[str, list[tuple[str, int, str, str]]] = {}
    for (name, grantee, creator), privs in defaults.items():
        involved.update((grantee, creator))
        text = _row(grantee in logins, enc(name), enc(AccessPath.DEFAULT_PRIVILEGES.value),
                    "[" + ",".join(enc(p) for p in sorted(privs)) + "]", enc(grantee), enc(creator))
        by_name.setdefault(name, []).append((grantee, priority[AccessPath.DEFAULT_PRIVILEGES], creator, text))
    for name, items in by_name.items():
        items.sort()
        per_object.append((name, ",".join(map(text_of, items)).encode()))
    per_object.sort(key=lambda item: item[0])

    memberships = [e for e in state.edges if e.role in involved or e.member in involved]
    involved |= {e.member for e in memberships} | {e.role for e in memberships}
    document = _header(spec, state, recorded_at).model_dump(mode="json")
    del document["access"]
    document["roles"] = [
        {"name": r.name, "login": r.login, "superuser": r.superuser, "bypassrls": r.bypassrls}
        for n, r in sorted(state.roles.items())
        if n in involved
    ]
    document["memberships"] = [
        {"role": e.role, "member": e.member, "grantor": e.grantor, "inherit": e.inherit, "set": e.set,
         "admin": e.admin}
        for e in memberships
    ]
    document["grants"] = _grant_rows(state)
    # Plain JSON values only (model_dump in JSON mode, and str/bool/None rows): orjson writes them
    # byte for byte as canonical_json does (see evidence.files.canonical_document).
    rest = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    # "access" sorts before every other key of the scope, so it opens the object.
    assert rest.startswith(b"{") and min(document) > "access"
    # One copy of the whole: the objects' parts are joined once.
    parts = [b'{"access":[']
    for i, (_, encoded_paths) in enumerate(per_object):
        if i:
            parts.append(b",")
        parts.append(encoded_paths)
    parts += [b"],", rest[1:]]
    return b"".join(parts)


class _Run:
    """One holder's members as rows of every object it holds, sorted by (role, path priority, via):
    a row is ``logins[i] + <the object's part> + tails[i]``. ``glue[i]`` is the text between the
    object's parts of rows i and i + 1 (``tails[i] + "," + logins[i + 1]``), so consecutive rows are
    one ``str.join`` around the object's part."""

    __slots__ = ("_glue", "_names", "keys", "logins", "tails")

    def __init__(self, keys: list[tuple[str, int, str]], logins: list[str], tails: list[str]) -> None:
        self.keys = keys
        self.logins = logins
        self.tails = tails
        self._glue: list[str] | None = None
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = [k[0] for k in self.keys]
        return self._names

    def rows(self, middle: str, start: int, stop: int) -> str:
        """Rows ``start`` to ``stop - 1``, joined by commas, with ``middle`` as the object's part."""
        if self._glue is None:
            self._glue = [t + "," + lg for t, lg in zip(self.tails[:-1], self.logins[1:], strict=True)]
        parts = [self.logins[start]]
        parts += self._glue[start : stop - 1]
        parts.append(self.tails[stop - 1])
        return middle.join(parts)


def _merged(run: _Run, middle: str, items: list[tuple[str, int, str, str]]) -> str:
    """``run``'s rows (with ``middle``) and ``items`` (sorted (role, priority, via, text)) as one sorted
    comma-separated text: each item goes where its key falls among the run's."""
    names = run.names()
    _, run_rank, run_via = run.keys[0]
    end = len(names)
    pieces: list[str] = []
    start = 0
    for role, rank, via, text in items:
        # Every key of the run has its rank and via: names decide, and on the same name those two.
        at = bisect_left(names, role, start)
        if at < end and names[at] == role and (rank, via) > (run_rank, run_via):
            at += 1
        if at > start:
            pieces.append(run.rows(middle, start, at))
            start = at
        pieces.append(text)
    if start < end:
        pieces.append(run.rows(middle, start, end))
    return ",".join(pieces)


def _row(login: bool, obj: str, path: str, privileges: str, role: str, via: str) -> str:
    """One access path as canonical JSON text (keys in sorted order), from encoded parts."""
    return (
        ('{"login":true' if login else '{"login":false')
        + ',"object":' + obj + ',"path":' + path + ',"privileges":' + privileges + ',"role":' + role + ',"via":'
        + via + "}"
    )


__all__ = ["Derived", "derive", "scope_document", "scope_facts", "scope_model"]
