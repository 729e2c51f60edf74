"""The ``pausegate`` command.

Every module of ``pausegate.cli`` that holds commands has its own ``app = typer.Typer()`` and
declares them with ``@app.command("name")``. Here they are mounted: without a name, a module's
commands become top-level commands (``pausegate pause``); with one, a group (``pausegate runbook``).

A module is imported only when one of its commands is looked up: ``pausegate worker`` then loads the
worker and nothing of the API client, the views or the signing tools, so a worker started to replace a
dead one polls sooner, most of all on a busy machine. ``pausegate --help`` still loads them all.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer._click import Command  # the click Typer vendors, which its groups hold
from typer.core import TyperGroup
from typer.main import get_group_from_info
from typer.models import TyperInfo

MOUNTS: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(("up", "worker", "api"), ("stack", None)),
    **dict.fromkeys(("pause", "waive", "retry-step", "waive-step"), ("containment", None)),
    **dict.fromkeys(("status", "pauses", "report", "data-subjects"), ("pauses", None)),
    **dict.fromkeys(("checklist", "complete", "plan", "reject"), ("review", None)),
    **dict.fromkeys(("approve", "decommission"), ("signoff", None)),
    "refusals": ("refusals", None),
    **dict.fromkeys(("drill", "drill-status", "drill-stop", "drill-schedule"), ("drill", None)),
    "runbook": ("runbook", "runbook"),
    "evidence": ("evidence", "evidence"),
    "keys": ("keys", "keys"),
    "users": ("users", "users"),
    "watch": ("watch", "watch"),
    "break-glass": ("break_glass", "break-glass"),
}
"""Every command, in the order ``--help`` lists them: the module of ``pausegate.cli`` that declares it and
the group that module is mounted as (None: its commands are top-level)."""


class _Commands(MutableMapping[str, Command]):
    """The root's commands, each built (its module imported) on first access, exactly as mounting the
    module's ``app`` on the root with ``add_typer`` would build it."""

    def __init__(self) -> None:
        self._built: dict[str, Command] = {}
        self._order = list(MOUNTS)

    def _build(self, module_name: str, mount: str | None) -> None:
        module = importlib.import_module(f"pausegate.cli.{module_name}")
        holder = typer.Typer()
        holder.add_typer(module.app, name=mount)
        group = get_group_from_info(TyperInfo(holder), pretty_exceptions_short=app.pretty_exceptions_short,
                                    rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
        for name, command in group.commands.items():
            self._built.setdefault(name, command)

    def __getitem__(self, name: str) -> Command:
        if name not in self._built and name in MOUNTS:
            self._build(*MOUNTS[name])
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        if name not in self._order:
            self._order.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._order


class _LazyGroup(TyperGroup):
    """The root group, with its commands from ``MOUNTS`` built on first access."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands: MutableMapping[str, Command] = _Commands()


def _root() -> None:
    """Nothing to do before a command: there for Typer, which builds a group of a bare app with a callback."""


app = typer.Typer(
    help="Pause a data-collection program, prove the pause, resume it only after a signed-off review.",
    no_args_is_help=True,
    cls=_LazyGroup,
    callback=_root,
)


def main() -> None:
    """Run the command. A short command that talked to Temporal (``evidence audit``, ``evidence verify``)
    leaves without the interpreter's finalization once its output is written: the SDK's core threads
    can abort the process there (PyGILState_Release), turning a verdict's exit code into a crash."""
    try:
        app()
    except SystemExit as exc:
        # Looked up, not imported: a command that never loaded the module never connected.
        record = sys.modules.get("pausegate.temporal.recorded_evidence")
        if record is None or not record.CONNECTED:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
