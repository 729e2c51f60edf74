"""What one parsed SQL statement does with rows: where it puts them (a copy's destination), and how
it renames, moves or drops a relation. Pure; reads libpg_query's JSON tree, as ``statement_reads``.

The reads themselves (which dataset tables, views or copies a statement reads) are
``statement_reads.analyse``'s; this module only says where the rows go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pglast import parser as pg

from pausegate.analysis.pg_nodes import node
from pausegate.analysis.statement_reads import parser_text
from pausegate.models.copies import CopyKind

# A body kept as text (DO, CREATE FUNCTION, PREPARE) holding one of these may write rows somewhere.
WRITE_MARKERS = ("insert", "into", "create", "copy", "merge", "update", "execute", "refresh")
Persistence = Literal["permanent", "temporary", "unlogged"]
_PERSISTENCE: dict[str, Persistence] = {"p": "permanent", "t": "temporary", "u": "unlogged"}
_DYNAMIC_TAGS = frozenset({"DoStmt", "CreateFunctionStmt", "CallStmt"})
_RELATION_OBJECTS = frozenset({"OBJECT_TABLE", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"})


@dataclass(frozen=True)
class Relation:
    schema: str | None
    name: str
    persistence: Persistence = "permanent"


@dataclass(frozen=True)
class Target:
    """Where a statement puts rows it read."""

    kind: CopyKind
    relation: Relation | None = None
    destination: str | None = None  # a file, a program, "client"
    no_data: bool = False  # CREATE ... WITH NO DATA: a definition, filled by a later REFRESH
    whole: str | None = None  # COPY of a whole relation (no query): the relation, as written
    execute: str | None = None  # CREATE TABLE AS EXECUTE: the prepared statement whose rows it keeps


@dataclass(frozen=True)
class Change:
    """A statement that changes a relation a copy may be: dropped, renamed, moved, refreshed."""

    action: Literal["drop", "drop_schema", "rename", "set_schema", "refresh", "create_temp", "view"]
    relation: Relation
    new: str | None = None  # the new name or schema


@dataclass(frozen=True)
class Transaction:
    action: Literal["begin", "commit", "rollback", "other"]


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a log message, with its own text (for ``analyse``)."""

    tag: str
    text: str
    target: Target | None = None
    changes: tuple[Change, ...] = ()
    transaction: Transaction | None = None
    dynamic: bool = False  # runs SQL it keeps as text, and that text may write
    prepare: str | None = None  # PREPARE name: what it would do is ``target``, done only when executed
    execute: str | None = None  # EXECUTE name


def _relation(rv: Any) -> Relation | None:
    if not isinstance(rv, dict) or not rv.get("relname"):
        return None
    persistence = _PERSISTENCE.get(str(rv.get("relpersistence", "p")), "permanent")
    return Relation(rv.get("schemaname") or None, str(rv["relname"]), persistence)


def _names(item: Any) -> Relation | None:
    """A DROP's object: a list of name parts, schema first."""
    parts = [str(p.get("String", {}).get("sval", "")) for p in node(item)[1].get("items", ())]
    if not parts or not parts[-1]:
        return None
    return Relation(parts[-2] if len(parts) > 1 else None, parts[-1])


def _analyzed(body: dict[str, Any]) -> bool:
    """EXPLAIN ANALYZE runs the statement it explains (the option as PostgreSQL reads it: no value is true)."""
    for option in body.get("options", ()):
        elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
        if elem.get("defname") == "analyze":
            arg = node(elem.get("arg"))[1]
            value = next(iter(arg.values()), True) if arg else True
            value = next(iter(value.values()), True) if isinstance(value, dict) else value
            return str(value).lower() not in ("false", "off", "0")
    return False


def _target(tag: str, body: dict[str, Any]) -> Target | None:
    if tag == "ExplainStmt":
        return _target(*node(body.get("query"))) if _analyzed(body) else None
    if tag == "CreateTableAsStmt":
        into = body.get("into", {})
        rel = _relation(into.get("rel"))
        if rel is None:
            return None
        inner, query = node(body.get("query"))
        execute = str(query.get("name", "")) or None if inner == "ExecuteStmt" else None
        if body.get("objtype") == "OBJECT_MATVIEW":
            return Target(CopyKind.MATERIALIZED_VIEW, rel, no_data=bool(into.get("skipData")), execute=execute)
        kind = CopyKind.TEMPORARY_TABLE if rel.persistence == "temporary" else CopyKind.CREATE_TABLE_AS
        return Target(kind, rel, no_data=bool(into.get("skipData")), execute=execute)
    if tag == "SelectStmt" and "intoClause" in body:
        rel = _relation(body["intoClause"].get("rel"))
        if rel is None:
            return None
        return Target(CopyKind.TEMPORARY_TABLE if rel.persistence == "temporary" else CopyKind.SELECT_INTO, rel)
    if tag == "InsertStmt" and "selectStmt" in body:
        rel = _relation(body.get("relation"))
        return None if rel is None else Target(CopyKind.INSERT_SELECT, rel)
    if tag == "MergeStmt":
        rel = _relation(body.get("relation"))
        return None if rel is None else Target(CopyKind.MERGE, rel)
    if tag == "UpdateStmt" and body.get("fromClause"):
        rel = _relation(body.get("relation"))
        return None if rel is None else Target(CopyKind.UPDATE_FROM, rel)
    if tag == "CopyStmt" and not body.get("is_from"):
        source = _relation(body.get("relation"))
        whole = None if source is None else f"{source.schema}.{source.name}" if source.schema else source.name
        if body.get("is_program"):
            return Target(CopyKind.COPY_TO_PROGRAM, destination=str(body.get("filename", "")), whole=whole)
        if body.get("filename"):
            return Target(CopyKind.COPY_TO_FILE, destination=str(body["filename"]), whole=whole)
        return Target(CopyKind.COPY_TO_CLIENT, destination="client", whole=whole)
    return None


def _changes(tag: str, body: dict[str, Any]) -> tuple[Change, ...]:
    if tag == "DropStmt" and body.get("removeType") in _RELATION_OBJECTS:
        return tuple(Change("drop", r) for r in map(_names, body.get("objects", ())) if r is not None)
    if tag == "DropStmt" and body.get("removeType") == "OBJECT_SCHEMA" and body.get("behavior") == "DROP_CASCADE":
        schemas = (str(o.get("String", {}).get("sval", "")) for o in body.get("objects", ()) if isinstance(o, dict))
        return tuple(Change("drop_schema", Relation(s, "*")) for s in schemas if s)
    rel = _relation(body.get("relation"))
    if rel is None:
        if tag == "ViewStmt" and (view := _relation(body.get("view"))) is not None:
            return (Change("view", view),)
        return ()
    if tag == "RenameStmt" and body.get("renameType") in _RELATION_OBJECTS and body.get("newname"):
        return (Change("rename", rel, str(body["newname"])),)
    if tag == "AlterObjectSchemaStmt" and body.get("objectType") in _RELATION_OBJECTS and body.get("newschema"):
        return (Change("set_schema", rel, str(body["newschema"])),)
    if tag == "RefreshMatViewStmt" and not body.get("skipData"):
        return (Change("refresh", rel),)
    if tag == "CreateStmt" and rel.persistence == "temporary":
        return (Change("create_temp", rel),)
    return ()


def _transaction(tag: str, body: dict[str, Any]) -> Transaction | None:
    if tag != "TransactionStmt":
        return None
    kind = str(body.get("kind", ""))
    if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
        return Transaction("begin")
    if kind == "TRANS_STMT_COMMIT":
        return Transaction("commit")
    if kind == "TRANS_STMT_ROLLBACK":
        return Transaction("rollback")
    return Transaction("other")


def _dynamic(tag: str, text: str) -> bool:
    folded = text.casefold()
    return tag in _DYNAMIC_TAGS and any(m in folded for m in WRITE_MARKERS)


def parsed(message: str) -> tuple[list[tuple[str, dict[str, Any], str]], str | None]:
    """The top-level statements of one log message as (node type, tree, its own text); or why it was
    not parsed. Bounded like ``analyse``: the same size limit and comment cutting before the parser runs."""
    text, error = parser_text(message)
    if error is not None:
        return [], error
    try:
        tree = json.loads(pg.parse_sql_json(text))
    except RecursionError:
        return [], "statement nests too deeply to decode"
    except Exception as exc:  # a parse error
        return [], f"{type(exc).__name__}: {exc}"
    raw = text.encode("utf-8", "surrogatepass")
    out: list[tuple[str, dict[str, Any], str]] = []
    for item in tree.get("stmts", ()):
        tag, body = node(item.get("stmt"))
        start = int(item.get("stmt_location", 0))
        length = int(item.get("stmt_len", 0))
        out.append((tag, body, raw[start : start + length if length else len(raw)].decode("utf-8", "surrogatepass")))
    return out, None


def split(message: str) -> tuple[list[Statement], str | None]:
    """The top-level statements of one log message, each classified; or why it was not parsed (``parsed``)."""
    pieces, error = parsed(message)
    if error is not None:
        return [], error
    out: list[Statement] = []
    for tag, body, piece in pieces:
        prepare = str(body.get("name", "")) or None if tag == "PrepareStmt" else None
        execute = str(body.get("name", "")) or None if tag == "ExecuteStmt" else None
        target = _target(*node(body.get("query"))) if prepare else _target(tag, body)
        out.append(Statement(tag=tag, text=piece, target=target, changes=_changes(tag, body),
                             transaction=_transaction(tag, body), dynamic=_dynamic(tag, piece), prepare=prepare,
                             execute=execute))
    return out, None


def may_copy(message: str) -> bool:
    """Whether an unparsed message might still have written rows somewhere: cheap, linear."""
    folded = message.casefold()
    return any(m in folded for m in WRITE_MARKERS)


def qualified_candidates(relation: Relation, path: tuple[str, ...], user: str | None) -> tuple[str, ...]:
    """schema.name where a name may live: as written when qualified, else each schema of the path."""
    if relation.schema:
        return (f"{relation.schema}.{relation.name}",)
    schemas = (user if s == "$user" else s for s in path)
    seen = dict.fromkeys(
        s for s in schemas if s and s not in ("pg_catalog", "pg_temp") and not s.startswith("pg_temp_"))
    return tuple(f"{s}.{relation.name}" for s in seen)
