"""Environment references in the configuration file: a value written ``"${NAME}"`` is the variable NAME.

A production configuration can then live in version control while its secrets (DSN passwords, tokens,
API keys) come from the environment the platform injects from its secret store. Only a whole value is
replaced (no interpolation inside a longer string, no defaults): what a field holds is either written
in the file or named there, never a mix. An unset variable is an error naming the field and the variable.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from typing import Any

from pausegate.errors import ConfigError

_FIRST = frozenset(string.ascii_uppercase + "_")
_REST = frozenset(string.ascii_uppercase + string.digits + "_")
MAX_NAME = 200


def reference(value: str) -> str | None:
    """The variable a value names (``${NAME}``, NAME of capitals, digits and underscores), else None."""
    if not (value.startswith("${") and value.endswith("}")) or not 3 < len(value) <= MAX_NAME + 3:
        return None
    name = value[2:-1]
    if name[0] not in _FIRST or any(c not in _REST for c in name):
        return None
    return name


def expand_env_references(raw: Any, *, where: str, environ: Mapping[str, str] | None = None) -> Any:
    """``raw`` (parsed TOML) with every ``${NAME}`` value replaced by the environment's NAME."""
    env = os.environ if environ is None else environ

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, str(i))) for i, v in enumerate(value)]
        if isinstance(value, str) and (name := reference(value)) is not None:
            if name not in env:
                raise ConfigError(f"{where}: {'.'.join(path)}: environment variable {name} is not set")
            return env[name]
        return value

    return walk(raw, ())
