"""``users add``: local users of the embedded stack and their API tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pausegate.cli.exits import EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt
from pausegate.cli.output import emit_json, out
from pausegate.errors import ConfigError

app = typer.Typer(help="Local users and their API tokens (embedded stack).", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user's name (the actor in every timeline entry).")],
    role: Annotated[list[str], typer.Option("--role", help="A role; repeat.")],
    replace: Annotated[bool, typer.Option(help="Issue a new token for an existing user.")] = False,
    users_file: Annotated[Path | None, typer.Option(help="Default: api.users_file of the configuration.")] = None,
    config: Annotated[Path | None, typer.Option(help="Configuration file (default: $PAUSEGATE_CONFIG).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user and print their token once (only its hash is kept)."""
    from pausegate.auth.local import LocalTokens
    from pausegate.config import load_settings

    try:
        path = users_file or load_settings(config).api.users_file
        token = LocalTokens(path).add(name, role, replace=replace)
    except (ValueError, ConfigError) as exc:
        fail(EXIT_USAGE, str(exc), as_json=as_json, error="usage")
    roles = sorted(set(role))
    if as_json:
        emit_json({"name": name, "roles": roles, "token": token, "users_file": str(path)})
        return
    out.say("user ", (name, "bold"), f" ({', '.join(roles)}) added to ", path)
    out.say("token (shown once, keep it secret):")
    print(token)
    out.say("use it with: export PAUSEGATE_TOKEN=", token)
