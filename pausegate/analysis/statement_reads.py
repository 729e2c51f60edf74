"""Which of a dataset's tables a logged SQL statement reads, found with PostgreSQL's own parser.

``analyse`` parses with libpg_query (pglast) and resolves names as the server does: qualified as
written, unqualified through ``search_path``, CTEs shadowing, views / materialized views /
functions leading to the tables they expose (``ReadScope``). ``prefilter`` is the cheap gate in
front of it, ``statement_kind`` the first keyword. All of it is linear in the statement.

PostgreSQL's scanner is quadratic on long runs of operator characters (5000 ``/**/``: ~100 ms,
50000: ~10 s; ``+-+-...`` too): comments are cut short here first, and a longer run than
``_MAX_OPERATOR_RUN`` is not parsed. The JSON tree is walked, not ``pglast.parse_sql``'s objects:
those cost ~20x more, and building them crashed the process (SIGSEGV) on ~40000 chained ``+``;
the JSON decoder raises instead, past ~490 chained joins or ``||`` (~980 UNION arms): unparsed.
Measured: ~55-90 µs for a one-line SELECT; 0.4-0.9 ms per KiB for large statements, most of it
decoding libpg_query's JSON (~15x the SQL's size).

Not followed: triggers, non-view rules, defaults, policies, operators and casts calling
functions, ``row.func`` calls, inheritance (list a parent as a "view" reaching its children),
``SET ROLE`` changing ``$user``, SQL ``EXECUTE`` of a prepared statement (``PREPARE``: "possible").
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Literal

from pglast import parser as pg
from pydantic import Field, PrivateAttr, field_validator

from pausegate.analysis.pg_nodes import node_or_none, scalar, string_value
from pausegate.models.base import Model

MAX_STATEMENT_BYTES = 256 * 1024
DEFAULT_SEARCH_PATH: tuple[str, ...] = ("$user", "public")
_MAX_OPERATOR_RUN = 64  # PostgreSQL rejects operators of NAMEDATALEN (64) bytes anyway
_OP_CHARS = "~!@#^&|`?+-*/%<>="
_OP_MARK = str.maketrans({**dict.fromkeys(_OP_CHARS, "\x01"), "\x01": " "})
_SPACE = " \t\n\r\f\v"
# Functions that run a query, or read a relation, named in a string (built-in and contrib).
_RUNNERS = frozenset(
    {f"{p}_to_xml{s}" for p in ("query", "table", "schema", "database") for s in ("", "_and_xmlschema")}
    | {"ts_stat", "dblink", "dblink_exec", "dblink_open", "dblink_send_query", "crosstab", "connectby",
       "xpath_table", "get_raw_page"})
# Text holding one of these may build SQL at run time, so may reach any table.
_OPAQUE = ("u&", "execute", "format(", "_to_xml", "ts_stat", "dblink", "crosstab", "connectby", "xpath_table",
           "get_raw_page")
_DML = {"SelectStmt": "SELECT", "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE",
        "MergeStmt": "MERGE"}
# A DML target is read when what the statement does depends on its rows.
_TARGET_READ = {"SelectStmt": (), "MergeStmt": ("relation",),
                "InsertStmt": ("onConflictClause", "returningClause", "returningList"),
                "UpdateStmt": ("whereClause", "returningClause", "returningList"),
                "DeleteStmt": ("whereClause", "returningClause", "returningList")}
# Statements that (may) read; the rest (DDL, GRANT, TRUNCATE, VACUUM...) read no rows.
_WALKED = frozenset({*_DML, "CopyStmt", "ExplainStmt", "CreateTableAsStmt", "RefreshMatViewStmt",
                     "DeclareCursorStmt", "DoStmt", "CallStmt", "VariableSetStmt", "ViewStmt", "PrepareStmt",
                     "RuleStmt", "CreateFunctionStmt"})
# Definitions run nothing now: what their body reads is reported "possible".
_DEFINITIONS = ("ViewStmt", "PrepareStmt", "RuleStmt", "CreateFunctionStmt", "DoStmt")
_LEAVES = frozenset({"ColumnRef", "A_Const", "ParamRef", "A_Star", "String", "Integer", "Float", "Boolean",
                     "BitString", "TypeName", "Alias", "SQLValueFunction"})  # nothing to find below them

How = Literal["direct", "through", "possible"]
_Hit = tuple[str, How, str | None]
_Item = tuple[str | None, Any, frozenset[str], str | None]  # (node type, node, CTE names in scope, forced via)


def _qualify(name: str) -> str:
    return name if "." in name else f"public.{name}"


class Exposer(Model):
    """A view, materialized view or function through which the dataset's tables can be read."""

    kind: Literal["view", "matview", "function"]
    reaches: tuple[str, ...] = Field(default=(), description="The dataset tables it reaches, schema.table.")
    dynamic: bool = Field(default=False, description="Its body runs dynamic SQL / cannot be fully followed.")


class ReadScope(Model):
    """What the dataset exposes; names as stored in the catalogs (unquoted ones lower-case)."""

    tables: frozenset[str]
    exposers: dict[str, Exposer] = Field(default_factory=dict)
    whole_schemas: frozenset[str] = Field(default=frozenset(), description="Schemas whose every relation counts.")
    _index: _Index = PrivateAttr()

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(map(_qualify, value))

    @field_validator("exposers")
    @classmethod
    def _exposers(cls, value: dict[str, Exposer]) -> dict[str, Exposer]:
        return {_qualify(k): v for k, v in value.items()}

    def model_post_init(self, context: Any, /) -> None:
        self._index = _Index(self)

    @classmethod
    def of(cls, tables: Iterable[str] = (), exposers: Mapping[str, Exposer] | None = None,
           whole_schemas: Iterable[str] = ()) -> ReadScope:
        return cls(tables=frozenset(tables), exposers=dict(exposers or {}), whole_schemas=frozenset(whole_schemas))


class Read(Model):
    object: str = Field(description="The dataset table reached, schema.table (schema.* for a whole schema).")
    how: How
    via: str | None = Field(default=None, description="The view, function or construct it went through.")


class StatementReads(Model):
    parsed: bool
    kind: str
    reads: list[Read] = Field(default_factory=list)
    search_path: tuple[str, ...] | None = Field(default=None, description="The search_path the statement sets.")
    search_path_local: bool = Field(default=False, description="Set by SET LOCAL / set_config(..., true).")
    error: str | None = None


class _Index:
    """A scope arranged for lookups, built once per ``ReadScope``."""

    def __init__(self, scope: ReadScope) -> None:
        self.whole = scope.whole_schemas
        self.all: tuple[str, ...] = (*sorted(scope.tables), *(f"{s}.*" for s in sorted(self.whole)))
        self.rel: dict[str, tuple[_Hit, ...]] = {t: ((t, "direct", None),) for t in scope.tables}
        self.func: dict[str, tuple[_Hit, ...]] = {}
        named: dict[str, set[str]] = {}
        for t in scope.tables:
            named.setdefault(t.rpartition(".")[2], set()).add(t)
        for s in self.whole:
            named.setdefault(s, set()).add(f"{s}.*")
        for q, e in scope.exposers.items():
            reach = self.all if e.dynamic else e.reaches
            if e.kind == "function":
                self.func[q] = tuple((t, "possible" if e.dynamic else "through", q) for t in reach)
            else:
                self.rel[q] = (*self.rel.get(q, ()), *((t, "through", q) for t in e.reaches))
            named.setdefault(q.rpartition(".")[2], set()).update(reach)
        # every way a statement can spell a name: any case, quotes doubled inside "..." or '...'
        spelled: dict[str, set[str]] = {}
        for name, targets in named.items():
            for v in filter(None, {name, name.replace('"', '""'), name.replace("'", "''")}):
                spelled.setdefault(v.casefold(), set()).update(targets)
        self.named = tuple((k, tuple(sorted(v))) for k, v in sorted(spelled.items()))
        self.needles = tuple(sorted({*spelled, *_OPAQUE}))

    def relation(self, schema: str, name: str) -> tuple[_Hit, ...] | None:
        hit = self.rel.get(f"{schema}.{name}")
        return (*(hit or ()), (f"{schema}.{name}", "direct", None)) if schema in self.whole else hit

    def in_text(self, text: str | None) -> tuple[str, ...]:
        """The dataset tables a piece of dynamic SQL could reach (all when it builds SQL)."""
        folded = None if text is None else text.casefold()
        if folded is None or any(m in folded for m in _OPAQUE):
            return self.all
        return tuple(t for needle, targets in self.named if needle in folded for t in targets)


def _search_path(path: Sequence[str], user: str | None) -> tuple[str, ...]:
    named = (user if s == "$user" else s for s in path)
    return tuple(s for s in named if s and s not in ("pg_catalog", "pg_temp") and not s.startswith("pg_temp_"))


# ---------------------------------------------------------------- linear scanning


def _ident(c: str) -> bool:
    return not c.isascii() or c.isalnum() or c in "_$"


class _Finder:
    """``str.find`` remembered per needle: a forward scan asking for a needle absent from the
    rest of the text would otherwise search to the end at every ask (quadratic)."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, dict[str, int]()

    def find(self, needle: str, i: int) -> int:  # len(text) when absent; i must never decrease
        at = self.at.get(needle, -1)
        if at < i:
            at = self.text.find(needle, i)
            self.at[needle] = at = len(self.text) if at < 0 else at
        return at


def _comment_end(f: _Finder, i: int) -> int:
    """The end of the block comment opening at ``i`` (they nest); -1 if unterminated."""
    depth = 0
    while True:
        o, c = f.find("/*", i), f.find("*/", i)
        if c >= len(f.text):
            return -1
        depth, i = (depth + 1, o + 2) if o < c else (depth - 1, c + 2)
        if depth == 0:
            return i


def _quoted_end(f: _Finder, i: int, q: str) -> int:
    """The end of the '...' or "..." opening at ``i`` (doubled quotes inside); -1 if unterminated."""
    while (i := f.find(q, i + 1)) < len(f.text):
        if not f.text.startswith(q, i + 1):
            return i + 1
        i += 1
    return -1


def statement_kind(statement: str) -> str:
    """The first SQL keyword, upper-case, past whitespace, comments and parentheses. O(n)."""
    f, i, n = _Finder(statement), 0, len(statement)
    while i < n:
        if statement[i] in _SPACE or statement[i] == "(":
            i += 1
        elif statement.startswith("--", i):
            i = min(f.find("\n", i), f.find("\r", i))
        elif statement.startswith("/*", i):
            i = _comment_end(f, i) % (n + 1)  # unterminated: n
        else:
            j = i
            while j < n and statement[j].isascii() and statement[j].isalpha():
                j += 1
            return statement[i:j].upper() or "UNKNOWN"
    return "UNKNOWN"


def _strip(s: str) -> tuple[str, str | None]:
    """The statement with its comments cut short, for the parser; or why not to parse it."""
    if "/*" not in s and "--" not in s and "\x01" * (_MAX_OPERATOR_RUN + 1) not in s.translate(_OP_MARK):
        return s, None
    f, out, i, start, run, n = _Finder(s), list[str](), 0, 0, 0, len(s)
    while i < n:
        c, j = s[i], i + 1
        if (c == "-" and s.startswith("-", j)) or (c == "/" and s.startswith("*", j)):
            j = min(f.find("\n", i), f.find("\r", i)) if c == "-" else _comment_end(f, i)
            if j < 0:
                return s, "unterminated /* comment"
            # " /**/ ": still not the newline-only gap that joins 'a' 'b' into one string
            out += (s[start:i], " " if c == "-" else " /**/ ")
            start, run = j, 0
        elif c in _OP_CHARS:
            run += 1
            if run > _MAX_OPERATOR_RUN:
                return s, f"a run of over {_MAX_OPERATOR_RUN} operator characters"
        else:
            run = 0
            if c in "'\"":
                j = _quoted_end(f, i, c)
            elif c == "$" and j < n and (s[j] == "$" or (_ident(s[j]) and not "0" <= s[j] <= "9")):
                k = j
                while k < n and _ident(s[k]) and s[k] != "$":
                    k += 1
                if k < n and s[k] == "$":  # $tag$ ... $tag$
                    end = f.find(s[i : k + 1], k + 1)
                    j = end + k + 1 - i if end < n else -1
            elif "0" <= c <= "9":  # a number, junk included: a "$" after it may open a dollar quote
                while j < n and s[j].isascii() and (s[j].isalnum() or s[j] in "_."):
                    j += 1
            elif _ident(c):
                while j < n and _ident(s[j]):
                    j += 1
                if s[i:j] in ("e", "E") and s.startswith("'", j):  # E'...' has backslash escapes
                    j += 1
                    while j < n and (s[j] != "'" or s.startswith("'", j + 1)):
                        j += 2 if s[j] in "\\'" else 1
                    j = j + 1 if j < n else -1
                elif s[i:j] in ("u", "U") and s.startswith(("&'", '&"'), j):
                    j = _quoted_end(f, j + 1, s[j + 1])
            if j < 0:
                return s, "unterminated quoted string or identifier"
        i = j
    return "".join((*out, s[start:])), None


# ---------------------------------------------------------------- the tree


def _true(arg: Any) -> bool:
    """An option's value as PostgreSQL's defGetBoolean reads it (no value: true)."""
    return arg is None or str(scalar(arg)[1]).lower() in ("true", "on", "1")


def _split_path(value: str) -> tuple[str, ...]:
    """A search_path string read as SplitIdentifierString does: quoted kept, unquoted lower-cased."""
    out, i, n = list[str](), 0, len(value)
    while i < n:
        while i < n and value[i] in _SPACE:
            i += 1
        if value.startswith('"', i):
            j = _quoted_end(_Finder(value), i, '"')
            j = n if j < 0 else j
            out.append(value[i + 1 : j - 1].replace('""', '"'))
        else:
            j = i
            while j < n and value[j] != "," and value[j] not in _SPACE:
                j += 1
            out.append("".join(c.lower() if c.isascii() else c for c in value[i:j]))
        i = value.find(",", j) + 1 or n
    return tuple(out)


class _Walk:
    """The reads of one log message's statements, in order (a SET search_path applies onwards)."""

    def __init__(self, index: _Index, path: Sequence[str], user: str | None) -> None:
        self.ix, self.user, self.path = index, user, _search_path(path, user)
        self.hits: dict[_Hit, None] = {}  # ordered and deduplicated
        self.search_path: tuple[str, ...] | None = None
        self.local = False

    def add(self, hits: Iterable[_Hit], via: str | None) -> None:
        for obj, how, through in hits:
            self.hits[(obj, "possible", via) if via else (obj, how, through)] = None

    def set_path(self, path: tuple[str, ...], local: bool) -> None:
        self.search_path, self.local, self.path = path, local, _search_path(path, self.user)

    def relation(self, rv: Mapping[str, Any] | None, ctes: frozenset[str], via: str | None) -> None:
        name, schema = (rv or {}).get("relname"), (rv or {}).get("schemaname")
        if not name or (not schema and name in ctes):
            return
        # unqualified: the first schema of the path where the scope knows the name
        for s in (schema,) if schema else self.path:
            if (hits := self.ix.relation(s, name)) is not None:
                return self.add(hits, via)

    def function(self, fc: Mapping[str, Any], via: str | None) -> None:
        parts, args = [p for p in map(string_value, fc.get("funcname", ())) if p is not None], fc.get("args", [])
        name = parts[-1] if parts else ""
        for s in parts[-2:-1] or self.path:
            if (hits := self.ix.func.get(f"{s}.{name}")) is not None:
                self.add(hits, via)
                break
        if name in _RUNNERS:
            consts = [scalar(a) for a in args]  # any argument computed at run time: could name anything
            text = " ".join(str(v) for k, v in consts if k == "String")
            dynamic = name.startswith(("schema_", "database_")) or any(not k for k, _ in consts)
            self.add(((t, "possible", name) for t in self.ix.in_text(None if dynamic else text)), via)
        if name == "set_config" and len(args) == 3 and str(string_value(args[0])).lower() == "search_path":
            if (value := string_value(args[1])) is not None:
                self.set_path(_split_path(value), _true(args[2]))

    def walk(self, stack: list[_Item]) -> None:
        while stack:  # iterative: an expression chain can nest thousands of levels deep
            tag, body, ctes, via = stack.pop()
            if tag is None:  # a list, or a dict: {"Type": {...}} or a node of a fixed type, unwrapped
                if (node := node_or_none(body)) is not None:
                    if node[0] not in _LEAVES:
                        stack.append((*node, ctes, via))
                    continue
                values = body.values() if isinstance(body, dict) else body
                stack.extend([(None, v, ctes, via) for v in values if isinstance(v, dict | list)])
                continue
            skip: tuple[str, ...] = ("lockingClause",)  # FOR UPDATE OF names FROM items, not tables
            if tag in _DML:
                ctes = self.with_clause(body.get("withClause"), ctes, via, stack)
                skip = ("withClause", "relation", "intoClause", "lockingClause", "larg", "rarg")
                stack.extend(("SelectStmt", body[k], ctes, via) for k in ("larg", "rarg") if k in body)
                if any(k in body for k in _TARGET_READ[tag]):
                    self.relation(body.get("relation"), frozenset(), via)  # a target is never a CTE
            elif tag == "RangeVar":
                self.relation(body, ctes, via)
                continue
            elif tag == "FuncCall":
                self.function(body, via)
            elif tag == "CallStmt":
                stack.append(("FuncCall", body.get("funccall", {}), ctes, via))
                continue
            elif tag == "CopyStmt":
                if body.get("is_from"):
                    continue
                self.relation(body.get("relation"), ctes, via)
            elif tag == "ExplainStmt":
                analyze = any(_true(o["DefElem"].get("arg")) for o in body.get("options", ())
                              if o.get("DefElem", {}).get("defname") == "analyze")
                # plain EXPLAIN runs nothing, but its estimates come from the tables' statistics
                stack.append((None, body.get("query"), ctes, via if analyze else via or "EXPLAIN"))
                continue
            elif tag == "CreateTableAsStmt":
                into = body.get("into", {})
                no_data = f"definition of {into.get('rel', {}).get('relname')}" if into.get("skipData") else None
                skip, via = ("into",), via or no_data
            elif tag == "RefreshMatViewStmt":
                if not body.get("skipData"):
                    self.relation(body.get("relation"), ctes, via)
                continue
            elif tag in _DEFINITIONS:
                skip, via = ("view", "relation", "options", "args"), via or self.definition(tag, body)
            elif tag == "VariableSetStmt":
                kind, local = body.get("kind"), bool(body.get("is_local"))
                if str(body.get("name", "search_path")).lower() != "search_path":
                    pass
                elif kind in ("VAR_RESET_ALL", "VAR_SET_DEFAULT", "VAR_RESET"):
                    self.set_path(DEFAULT_SEARCH_PATH, local)
                elif kind == "VAR_SET_VALUE":
                    self.set_path(tuple(string_value(a) or "" for a in body.get("args", ())), local)
                continue
            kids = [v for k, v in body.items() if isinstance(v, dict | list) and k not in skip]
            stack.extend([(None, v, ctes, via) for v in kids])

    def definition(self, tag: str, body: dict[str, Any]) -> str:
        """Reports what a body kept as text (DO, CREATE FUNCTION ... AS '...') could reach: it is
        run later, as dynamic SQL. Returns the label for the definition's reads."""
        name = (body.get("view", {}).get("relname") or body.get("name") or body.get("rulename")
                or ".".join(p for p in map(string_value, body.get("funcname", ())) if p))
        via = "DO block" if tag == "DoStmt" else f"definition of {name}"
        for opt in (*body.get("options", ()), *body.get("args", ())):
            elem = opt.get("DefElem", {})
            if elem.get("defname") == "as":
                arg = elem.get("arg", {})
                parts = arg["List"].get("items", ()) if "List" in arg else [arg]
                text = " ".join(filter(None, map(string_value, parts)))
                self.add(((t, "possible", via) for t in self.ix.in_text(text)), via)
        return via

    @staticmethod
    def with_clause(wc: Mapping[str, Any] | None, ctes: frozenset[str], via: str | None,
                    stack: list[_Item]) -> frozenset[str]:
        """Queues each CTE's query with the CTE names it sees (a plain WITH: the earlier ones; a
        RECURSIVE one: all); returns the names the rest of the statement sees."""
        items = [c.get("CommonTableExpr", {}) for c in (wc or {}).get("ctes", ())]
        names = frozenset(c.get("ctename", "") for c in items)
        seen = ctes | names if (wc or {}).get("recursive") else ctes
        for c in items:
            stack.append((None, c.get("ctequery"), seen, via))
            seen = seen | {c.get("ctename", "")}
        return ctes | names


# ---------------------------------------------------------------- entry points


def _unparsed(error: str) -> StatementReads:
    return StatementReads(parsed=False, kind="UNPARSED", reads=[], error=error)


def parser_text(statement: str) -> tuple[str, str | None]:
    """The text ``analyse`` gives the parser (comments cut short), or why it must not be parsed:
    other readers of the parse tree keep to the same time and memory bounds."""
    if len(statement) > MAX_STATEMENT_BYTES or len(statement.encode("utf-8", "surrogatepass")) > MAX_STATEMENT_BYTES:
        return statement, f"statement over {MAX_STATEMENT_BYTES} bytes"
    if "\x00" in statement:
        return statement, "statement holds a NUL character"
    return _strip(statement)


def analyse(statement: str, scope: ReadScope, *, search_path: Sequence[str] = DEFAULT_SEARCH_PATH,
            user: str | None = None) -> StatementReads:
    """The dataset tables a log message's statement(s) read, resolved for ``search_path`` with
    ``$user`` = ``user``. Never raises: what cannot be parsed comes back ``parsed=False``."""
    if len(statement) > MAX_STATEMENT_BYTES or len(statement.encode("utf-8", "surrogatepass")) > MAX_STATEMENT_BYTES:
        return _unparsed(f"statement over {MAX_STATEMENT_BYTES} bytes")
    if "\x00" in statement:  # libpg_query reads a C string: it would stop there
        return _unparsed("statement holds a NUL character")
    text, error = _strip(statement)
    if error is not None:
        return _unparsed(error)
    try:
        walk, kind = _Walk(scope._index, search_path, user), None
        for raw in json.loads(pg.parse_sql_json(text)).get("stmts", ()):
            tag, body = node_or_none(raw.get("stmt")) or ("", {})
            kind = kind or _DML.get(tag) or statement_kind(statement)
            if tag in _WALKED:
                walk.walk([(tag, body, frozenset(), None)])
    except RecursionError:
        return _unparsed("statement nests too deeply to decode")
    except Exception as exc:  # a parse error, or a tree this code did not expect
        return _unparsed(f"{type(exc).__name__}: {exc}")
    return StatementReads(
        parsed=True, kind=kind or statement_kind(statement), search_path=walk.search_path,
        search_path_local=walk.local, reads=[Read(object=o, how=h, via=v) for o, h, v in walk.hits],
    )


def _has_word(text: str, word: str, *, starts_only: bool = False) -> bool:
    i = text.find(word)
    while i >= 0:
        end = i + len(word)
        if (i == 0 or not _ident(text[i - 1])) and (starts_only or end >= len(text) or not _ident(text[end])):
            return True
        i = text.find(word, i + 1)
    return False


def prefilter(statement: str, scope: ReadScope, *, search_path: Sequence[str] = DEFAULT_SEARCH_PATH,
              user: str | None = None) -> bool:
    """False only when ``analyse`` with the same arguments finds no read. Linear time.

    Why: a name reaches ``analyse`` from the text spelled as the scope holds it (both sides
    case-folded, quotes doubled), or escaped with ``U&`` (looked for), or decoded from an
    ``E'...'`` string (looked for). Dynamic SQL is suspected only on ``_OPAQUE`` markers, looked
    for too; a DO block, CALL or EXECUTE without one of these reads nothing ``analyse`` follows.
    The one read that needs no name in the text, an unqualified relation resolving into a whole
    schema on the search path, makes every statement pass.
    """
    ix = scope._index
    if any(s in ix.whole for s in _search_path(search_path, user)):
        return True
    folded = statement.casefold()
    return any(n in folded for n in ix.needles) or any(_has_word(folded, w, starts_only=True) for w in _WORD_STARTS)


# An E'...' string: its escapes can spell any name in a body (DO, CREATE FUNCTION) read as text.
# (DO, CALL and EXECUTE need no word of their own: what they run reaches analyse only through
# a name or an _OPAQUE marker in the text, which the needles find.)
_WORD_STARTS = ("e'",)


class Needles(Model):
    """Everything ``prefilter`` looks for, for a reader that searches raw log bytes before decoding
    any line: a line holding none of these (and no non-ASCII character, whose case folding
    could produce them) cannot pass ``prefilter`` unless a whole schema is on its search_path."""

    substrings: tuple[str, ...] = Field(description="Case-folded; anywhere in the text.")
    word_starts: tuple[str, ...] = Field(description="Case-folded; at the start of a word.")
    whole_schemas: frozenset[str]


def needles(scope: ReadScope) -> Needles:
    ix = scope._index
    # a needle holding another is found wherever that one is: one search fewer
    kept = [n for n in ix.needles if not any(m != n and m in n for m in ix.needles)]
    return Needles(substrings=tuple(kept), word_starts=_WORD_STARTS, whole_schemas=ix.whole)


def _analyse_all(batch: list[str], scope: ReadScope, path: Sequence[str], user: str | None) -> list[StatementReads]:
    return [analyse(s, scope, search_path=path, user=user) for s in batch]


Item = tuple[str, Sequence[str], str | None]  # (statement, search_path, user)


def analyse_each(items: Iterable[Item], scope: ReadScope) -> list[StatementReads]:
    """``analyse`` of each (statement, search_path, user): statements of many sessions at once."""
    return [analyse(s, scope, search_path=path, user=user) for s, path, user in items]


async def analyse_each_off_loop(items: Iterable[Item], scope: ReadScope, *,
                                executor: Executor | None = None) -> list[StatementReads]:
    """``analyse_each`` off the event loop, like ``analyse_off_loop``."""
    call = functools.partial(analyse_each, list(items), scope)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


async def analyse_off_loop(statements: Iterable[str], scope: ReadScope, *,
                           search_path: Sequence[str] = DEFAULT_SEARCH_PATH, user: str | None = None,
                           executor: Executor | None = None) -> list[StatementReads]:
    """``analyse`` each statement off the event loop: in ``executor``, else the loop's default threads.

    libpg_query parses without the GIL, but decoding its JSON holds it in one C call: up to
    ~100-170 ms for a 256 KiB statement (a one-line SELECT: ~55 µs all told). A ``ProcessPoolExecutor``
    keeps even that off the loop's process. C code cannot be stopped part-way, so the time bound
    is ``MAX_STATEMENT_BYTES`` and the linear pre-scan, not a timeout.
    """
    call = functools.partial(_analyse_all, list(statements), scope, tuple(search_path), user)
    return await asyncio.get_running_loop().run_in_executor(executor, call)
