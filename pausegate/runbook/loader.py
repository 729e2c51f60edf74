"""Read a runbook from YAML, reporting every problem with the line and column it comes from.

A runbook is written by people and copied from the worked example, so a mistake must read
like a compiler error (``runbooks/x.yaml:12:5: checklist[2].roles: Field required``), all of
them at once, never a traceback. A runbook may also come from someone we should not trust
blindly, so the reader refuses what YAML would otherwise accept silently or expensively:
duplicate keys (the last one would win unseen), aliases (billion-laughs expansion), deep
nesting, huge or binary files, and tags beyond plain data. ruamel.yaml composes the nodes, each
knowing where it starts; plain scalars resolve by YAML 1.2 (``yes``, ``on``, ``1:30`` are text).

Problems are strings ``FILE:LINE:COL: field.path: message``; a problem that belongs to no
field uses ``(file)``, ``(yaml)`` or ``(document)`` as its path.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, get_args

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from pausegate.errors import RunbookError
from pausegate.models.runbook import Runbook, _find_cycle

__all__ = ["MAX_DEPTH", "MAX_RUNBOOK_BYTES", "load_runbook", "parse_runbook"]

MAX_RUNBOOK_BYTES = 1024 * 1024
"""A real runbook is a few kilobytes; anything near this is a mistake or an attack."""

MAX_DEPTH = 64
"""Nesting beyond this is refused (ruamel's ``max_depth``) before the recursive composer overflows the stack."""

Path_ = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
# Timestamps stay text: pydantic parses them with clearer errors than the YAML constructor.
_TIMESTAMP = _TAG + "timestamp"


class _Loc(NamedTuple):
    line: int
    column: int

    @classmethod
    def at(cls, mark: Any) -> _Loc:
        return cls(mark.line + 1, mark.column + 1)  # ruamel counts from zero; editors and people from one

    @classmethod
    def of(cls, node: Any) -> _Loc:
        return cls.at(node.start_mark)


@dataclass
class _Located:
    """Plain data built from the node tree, with where every value and key came from."""

    values: dict[Path_, _Loc] = field(default_factory=dict)
    keys: dict[Path_, _Loc] = field(default_factory=dict)
    problems: list[tuple[_Loc, str, str]] = field(default_factory=list)
    # Where the loader put null in place of something it refused; pydantic's complaint about
    # that null would only repeat the problem.
    replaced: set[_Loc] = field(default_factory=set)

    def refuse(self, node: Node, path: Path_, message: str, *, replaced: bool = False) -> None:
        self.problems.append((_Loc.of(node), _format_path(path), message))
        if replaced:
            self.replaced.add(_Loc.of(node))


class _Composer(Composer):
    """ruamel's composer, with each alias recorded and composed as null instead of resolved.

    An alias is where expansion bombs come from; a runbook never needs one. Composing goes on
    (with null in its place) so that the other problems are reported too.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # anchors are harmless once aliases are refused
        self.aliases: list[_Loc] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.parser.check_event(AliasEvent):
            return super().compose_node(parent, index)
        event = self.parser.get_event()
        self.aliases.append(_Loc.of(event))
        return ScalarNode(_TAG + "null", "", event.start_mark, event.end_mark)


def _compose(text: str) -> tuple[Node | None, list[_Loc], SafeConstructor]:
    """The root node (None if the document is empty), where the aliases were, a constructor for scalars."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer, yaml.max_depth = _Composer, MAX_DEPTH
    return yaml.compose(text), yaml.composer.aliases, yaml.constructor


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += ("." if out else "") + part
        else:
            # Keys with spaces, dots or control characters, quoted so the path stays one token.
            out += "[" + json.dumps(part).replace(" ", "\\u0020") + "]"
    return out or "(document)"


def _to_data(node: Node, path: Path_, located: _Located, constructor: SafeConstructor) -> Any:
    located.values[path] = _Loc.of(node)
    if isinstance(node, SequenceNode):
        if node.tag != _TAG + "seq":
            located.refuse(node, path, f"unsupported tag {node.tag}")
        return [_to_data(item, (*path, i), located, constructor) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        if node.tag != _TAG + "map":
            located.refuse(node, path, f"unsupported tag {node.tag}")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                located.refuse(key_node, path, "merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, ScalarNode):
                located.refuse(key_node, path, "keys must be plain strings")
                continue
            # The key's text as written: `on:` or `1:` is a (probably unknown) key, not True or 1.
            key = str(key_node.value)
            if key in result:
                first = located.keys[(*path, key)]
                located.refuse(key_node, (*path, key),
                               f"duplicate key {key!r} (first defined at line {first.line}, column {first.column})")
                continue
            located.keys[(*path, key)] = _Loc.of(key_node)
            result[key] = _to_data(value_node, (*path, key), located, constructor)
            if value_node.start_mark.index == value_node.end_mark.index:
                # Nothing written: ruamel marks that where the next token ends, maybe lines on; it is after the colon.
                located.values[(*path, key)] = _Loc(key_node.end_mark.line + 1, key_node.end_mark.column + 2)
        return result
    if node.tag == _TIMESTAMP:
        return str(node.value)
    if node.tag not in _SCALAR_TAGS:
        located.refuse(node, path, f"unsupported tag {node.tag}", replaced=True)
        return None
    try:
        return constructor.construct_object(node, deep=True)
    except (ValueError, OverflowError, YAMLError) as exc:
        # e.g. an integer with more digits than Python converts by default.
        located.refuse(node, path, f"not a valid value: {exc}", replaced=True)
        return None


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data:
        offset = data.index(b"\x00")
        line = data[:offset].count(b"\n") + 1
        raise _fail(source, _Loc(line, 1), "(file)", f"binary data (NUL byte at offset {offset}); not YAML")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise _fail(source, _Loc(line, col), "(file)", f"not UTF-8 text ({bad})") from None


def _fail(source: str, loc: _Loc, path: str, message: str) -> RunbookError:
    return RunbookError([f"{source}:{loc.line}:{loc.column}: {path}: {message}"])


def _too_big(source: str, size: int) -> RunbookError:
    message = f"{size} bytes is larger than the {MAX_RUNBOOK_BYTES} bytes a runbook may be"
    return _fail(source, _Loc(1, 1), "(file)", message)


def load_runbook(path: str | Path) -> Runbook:
    """Read and validate the runbook at ``path``; ``RunbookError`` lists every problem."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            # Read one byte past the limit rather than trusting stat (pipes, growing files).
            data = stream.read(MAX_RUNBOOK_BYTES + 1)
    except FileNotFoundError:
        raise RunbookError([f"{source}:1:1: (file): no such file"]) from None
    except IsADirectoryError:
        raise RunbookError([f"{source}:1:1: (file): is a directory, not a runbook file"]) from None
    except OSError as exc:
        raise RunbookError([f"{source}:1:1: (file): cannot read: {exc.strerror or exc}"]) from None
    return parse_runbook(data, source)


def parse_runbook(text: str | bytes, source_name: str = "<runbook>") -> Runbook:
    """Validate runbook YAML ``text``; problems are reported against ``source_name``."""
    if isinstance(text, bytes):
        if len(text) > MAX_RUNBOOK_BYTES:
            raise _too_big(source_name, len(text))
        text = _decode(text, source_name)
    elif (size := len(text.encode("utf-8", "surrogatepass"))) > MAX_RUNBOOK_BYTES:
        raise _too_big(source_name, size)

    try:
        root, aliases, constructor = _compose(text)
    except MaxDepthExceededError as exc:
        message = f"nested more than {MAX_DEPTH} levels deep"
        raise _fail(source_name, _Loc.at(exc.problem_mark), "(yaml)", message) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _Loc.at(mark) if mark else _Loc(1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        message = re.sub(r"\('([^'()]*)',\)", r"'\1'", message)  # ruamel says "but found ('<scalar>',)"
        raise _fail(source_name, where, "(yaml)", message) from None
    except ReaderError as exc:
        before = text[: exc.position]
        where = _Loc(before.count("\n") + 1, exc.position - before.rfind("\n"))
        raise _fail(source_name, where, "(yaml)", f"character U+{exc.character:04X} is not allowed in YAML") from None
    except YAMLError as exc:
        raise _fail(source_name, _Loc(1, 1), "(yaml)", str(exc)) from None
    except RecursionError:
        raise _fail(source_name, _Loc(1, 1), "(yaml)", "nested too deeply") from None

    if root is None:
        raise _fail(source_name, _Loc(1, 1), "(document)", "the file is empty; a runbook is a mapping")
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        raise _fail(source_name, _Loc.of(root), "(document)", f"a runbook is a mapping of keys, not {kind}")

    located = _Located()
    for loc in aliases:
        located.problems.append((loc, "(yaml)", "aliases (*name) are not allowed in a runbook"))
        located.replaced.add(loc)
    data = _to_data(root, (), located, constructor)
    located.problems.extend(_dependency_problems(data, located))

    runbook: Runbook | None = None
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        located.problems.extend(p for p in _pydantic_problems(exc, located) if p[0] not in located.replaced)
    except (RecursionError, ValueError, TypeError) as exc:
        # Validators are pure functions of the data, but a traceback here must still not escape.
        located.problems.append((_Loc(1, 1), "(document)", f"cannot validate: {type(exc).__name__}: {exc}"))

    if located.problems or runbook is None:
        raise RunbookError(_render(source_name, located.problems))
    return runbook


def _render(source: str, problems: list[tuple[_Loc, str, str]]) -> list[str]:
    unique = sorted(dict.fromkeys(problems), key=lambda p: p[0])  # file order (a stable sort)
    return [f"{source}:{loc.line}:{loc.column}: {path}: {message}" for loc, path, message in unique]


def _nearest(path: Path_, table: dict[Path_, _Loc]) -> tuple[Path_, _Loc]:
    for end in range(len(path), -1, -1):
        prefix = path[:end]
        if prefix in table:
            return prefix, table[prefix]
    return (), _Loc(1, 1)


def _pydantic_problems(exc: ValidationError, located: _Located) -> Iterator[tuple[_Loc, str, str]]:
    for error in exc.errors(include_url=False):
        path: Path_ = tuple(error["loc"])
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            _, loc = _nearest(path, located.keys)
            yield loc, _format_path(path), _unknown_key(path)
            continue
        if error["type"] == "model_type":
            message = "Input should be a mapping"
        if error["type"] == "value_error" and not path:
            # Runbook._consistent: the loader has already located each of these more precisely.
            for piece in message.removeprefix("Value error, ").split("; "):
                if not _already_reported(piece, located):
                    yield _whole_runbook_problem(piece, located)
            continue
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
            found, loc = _nearest(path, located.values)
            if found == path:
                key = _key_named_in(message, path, located)
                if key is not None:
                    path = (*path, key)
                    loc = located.keys[path]
            yield loc, _format_path(path), message
            continue
        _, loc = _nearest(path, located.values)
        yield loc, _format_path(path), message


def _unknown_key(path: Path_) -> str:
    known = _keys_of(path[:-1])
    if not known or not isinstance(path[-1], str):
        return "unknown key"
    close = difflib.get_close_matches(path[-1], known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key ({hint}expected one of: {', '.join(known)})"


def _keys_of(path: Path_) -> list[str]:
    """The keys the model accepts at ``path`` (by alias), or [] if that is not a model."""
    model: type[BaseModel] = Runbook
    for part in path:
        if isinstance(part, int):
            continue
        found = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if found is None:
            return []
        candidates = [found.annotation, *get_args(found.annotation)]
        for args in list(candidates):
            candidates.extend(get_args(args))
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return [f.alias or name for name, f in model.model_fields.items()]


def _key_named_in(message: str, path: Path_, located: _Located) -> str | None:
    """For a model-level error, the key of that model the message talks about, if any."""
    for key_path in located.keys:
        if len(key_path) == len(path) + 1 and key_path[:-1] == path:
            key = key_path[-1]
            if isinstance(key, str) and re.search(rf"\b{re.escape(key)}\b", message):
                return key
    return None


def _already_reported(piece: str, located: _Located) -> bool:
    # A cycle is one problem however it is spelled out; the loader reports it at its first item.
    head = piece.split(":", 1)[0] if piece.startswith("checklist dependencies form a cycle") else piece
    return any(message.startswith(head) for _, _, message in located.problems)


def _whole_runbook_problem(piece: str, located: _Located) -> tuple[_Loc, str, str]:
    writes = ("fleet", "writes", "dataset")
    if piece.startswith("fleet.writes") and writes in located.keys:
        return located.keys[writes], "fleet.writes.dataset", piece
    for section in ("checklist", "datasets", "audit_sources", "notifications"):
        if section.replace("_", " ").rstrip("s") in piece and (section,) in located.keys:
            return located.keys[(section,)], section, piece
    return _Loc(1, 1), "(document)", piece


_COLLECTIONS = (
    ("datasets", "name", "dataset"),
    ("audit_sources", "name", "audit source"),
    ("checklist", "id", "checklist item"),
    ("notifications", "name", "notification"),
)


def _dependency_problems(data: dict[str, Any], located: _Located) -> Iterator[tuple[_Loc, str, str]]:
    """Repeated names and checklist dependency errors, each at the entry that causes it.

    The model finds these too, but only once every field is valid, and only as one message
    for the whole runbook; here they are found from the raw data, so they are reported
    alongside other problems and point at the offending line. The wording is the model's,
    which lets the model's own report of the same problem be recognised and dropped.
    """
    for section, key, what in _COLLECTIONS:
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            name = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                loc = located.values[(section, i, key)]
                yield loc, f"{section}[{i}].{key}", f"{what} {name!r} is defined twice"
            seen.add(name)

    checklist = data.get("checklist")
    if not isinstance(checklist, list):
        return
    graph: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for i, item in enumerate(checklist):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            deps = item.get("depends_on")
            strings = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
            graph.setdefault(item["id"], strings)
            where.setdefault(item["id"], i)
    for item_id, i in where.items():
        deps = checklist[i].get("depends_on")
        if not isinstance(deps, list):
            continue
        for j, dep in enumerate(deps):
            if not isinstance(dep, str):
                continue
            loc = located.values[("checklist", i, "depends_on", j)]
            path = f"checklist[{i}].depends_on[{j}]"
            if dep not in graph:
                yield loc, path, f"checklist item {item_id!r} depends on unknown item {dep!r}"
            if dep == item_id:
                yield loc, path, f"checklist item {item_id!r} depends on itself"
    cycle = _find_cycle(graph)
    if cycle:
        i = where[cycle[0]]
        loc = located.keys.get(("checklist", i, "depends_on"), located.values[("checklist", i)])
        yield loc, f"checklist[{i}].depends_on", "checklist dependencies form a cycle: " + " -> ".join(cycle)
