"""Printing for people and for scripts.

Text from the API (actor ids, reasons, names, notes, details) is data, never markup: the consoles
here do not parse markup or emoji, everything printed goes through ``line``/``cell``/``table``,
which remove terminal control characters, and ``Output.print`` takes only Rich objects, so a
plain string with API text in it cannot reach a console unescaped. ``--json`` output is the
API's JSON, printed with ``emit_json`` (non-ASCII and control characters as JSON escapes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pausegate.cli.api_client import Reply

M = TypeVar("M")
Renderable = Text | Table | Group

Part = object | tuple[object, str]
"""A piece of a line: a value printed as text, or ``(value, style)``."""

# C0 controls but newline and tab, DEL, C1 controls; and the invisible characters that reorder or
# separate lines (bidirectional overrides and isolates, line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object) -> str:
    """``value`` as text that cannot drive the terminal: each control character shown as ``\\xNN``."""
    return _UNSAFE.sub(_visible, str(value))


def line(*parts: Part) -> Text:
    """One piece of text from ``parts``, each cleaned and taken literally (``[bold]`` stays ``[bold]``)."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            value, style = part
            text.append(clean(value), style=style)
        else:
            text.append(clean(part))
    return text


def cell(value: object | Text) -> Text:
    """A table cell: a ``Text`` made with ``line`` as it is, anything else cleaned."""
    return value if isinstance(value, Text) else line(value)


def table(title: Text | None = None, columns: tuple[str, ...] = (), *, show_header: bool = True) -> Table:
    """A table with these column headings (``title`` made with ``line``)."""
    made = Table(title=title, show_header=show_header)
    for column in columns:
        made.add_column(column)
    return made


def add_row(target: Table, *cells: object | Text) -> None:
    """Add a row, each value a literal, cleaned ``Text``."""
    target.add_row(*(cell(c) for c in cells))


def when(at: datetime | None) -> str:
    """A time as people read it in tables: UTC to the second."""
    return "—" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout: the API's JSON as it came, indented."""
    print(json.dumps(data, indent=2))


class Output:
    """A console that prints Rich objects only, and never reads markup, emoji or highlights into them."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.console = Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def print(self, renderable: Renderable) -> None:
        self.console.print(renderable)

    def say(self, *parts: Part) -> None:
        """Print one line made of ``parts`` (see ``line``)."""
        self.print(line(*parts))


out = Output()
err = Output(stderr=True)


def show(reply: Reply[M], as_json: bool, render: Callable[[M], Renderable]) -> None:
    """An answer as the API's JSON (``--json``), or rendered from its model for people."""
    if as_json:
        emit_json(reply.json)
    else:
        out.print(render(reply.model))
