"""The root command loads a command's module only when the command is used, and still lists every command."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys

import typer
from typer.main import get_group_from_info
from typer.models import TyperInfo

import pausegate.cli
from pausegate.cli.main import MOUNTS, app


def _declared(module_name: str, mount: str | None) -> list[str]:
    """The commands that mounting ``pausegate.cli.<module_name>`` as ``mount`` puts on the root."""
    holder = typer.Typer()
    holder.add_typer(importlib.import_module(f"pausegate.cli.{module_name}").app, name=mount)
    group = get_group_from_info(TyperInfo(holder), pretty_exceptions_short=True, rich_markup_mode="rich",
                                suggest_commands=True)
    return list(group.commands)


def test_every_declared_command_is_mounted_once() -> None:
    mounted = {(module, mount) for module, mount in MOUNTS.values()}
    declared = [name for module, mount in sorted(mounted, key=str) for name in _declared(module, mount)]
    assert sorted(declared) == sorted(MOUNTS)


def test_every_command_module_is_mounted() -> None:
    modules = {info.name for info in pkgutil.iter_modules(pausegate.cli.__path__)
               if info.name != "main" and isinstance(
                   getattr(importlib.import_module(f"pausegate.cli.{info.name}"), "app", None), typer.Typer)}
    assert modules == {module for module, _ in MOUNTS.values()}


def test_the_root_lists_every_command_in_order() -> None:
    assert list(typer.main.get_command(app).commands) == list(MOUNTS)  # type: ignore[attr-defined]


def test_the_worker_command_loads_none_of_the_other_commands() -> None:
    probe = (
        "import sys\n"
        "from pausegate.cli.main import main\n"
        "sys.argv = ['pausegate', 'worker', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('pausegate.cli.') or m.startswith('pausegate.api')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert set(loaded) <= {"pausegate.cli.main", "pausegate.cli.stack", "pausegate.cli.output"}, loaded
