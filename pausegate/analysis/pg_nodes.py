"""Reading the JSON parse trees of libpg_query (``pglast``): a node is ``{"Type": {fields}}``.

Written once for every analysis of statements (who saw what, copies, origins): a tree comes from a
statement an insider wrote, so a value that is not the node expected reads as nothing, never raises.
"""

from __future__ import annotations

from typing import Any

_SCALARS = {"String": ("sval", ""), "Integer": ("ival", 0), "Boolean": ("boolval", False), "Float": ("fval", "")}


def node_or_none(value: Any) -> tuple[str, dict[str, Any]] | None:
    """(type, fields) of a node; None for anything else (pointers to a fixed type come unwrapped)."""
    if isinstance(value, dict) and len(value) == 1:
        tag, body = next(iter(value.items()))
        if tag[:1].isupper() and isinstance(body, dict):
            return tag, body
    return None


def node(value: Any) -> tuple[str, dict[str, Any]]:
    """(type, fields) of a node; ("", {}) for anything else."""
    return node_or_none(value) or ("", {})


def scalar(value: Any) -> tuple[str, Any]:
    """(type, value) of a constant node or A_Const, through casts (libpg_query omits zero values);
    ("", None) for anything else."""
    while (found := node_or_none(value)) is not None and found[0] == "TypeCast":
        value = found[1].get("arg")
    if found is not None and found[0] == "A_Const":
        found = next(((t, found[1][k]) for t, (k, _) in _SCALARS.items() if k in found[1]), None)
    if found is None or found[0] not in _SCALARS:
        return "", None
    return found[0], found[1].get(*_SCALARS[found[0]])


def string_value(value: Any) -> str | None:
    """The text of a string constant (through casts), else None."""
    kind, text = scalar(value)
    return text if kind == "String" else None
