"""``users``: local users of the embedded stack and their API tokens, managed through the API by an admin.

Every change goes through ``/v1/users`` and into the users' signed change log; nothing here writes the
users file itself (a change made to it by hand is found and recorded as made outside the API).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group

from pausegate.auth.users.views import UserLogView, UserView
from pausegate.cli.exits import EXIT_REFUSED
from pausegate.cli.options import JsonOpt
from pausegate.cli.output import add_row, emit_json, line, out, show, table, when
from pausegate.cli.session import connect

app = typer.Typer(help="Local users and their API tokens (embedded stack; admin role).", no_args_is_help=True)

RoleOpt = Annotated[
    list[str],
    typer.Option("--role", help="A role: NAME for every program, NAME@PROGRAM for that program only; repeat."),
]


def _users(users: list[UserView]) -> Group:
    shown = table(line("Local users"), ("name", "acts as", "roles", "created"))
    for u in users:
        add_row(shown, u.name, u.actor_id, ", ".join(u.roles), when(u.created_at))
    return Group(shown)


def _log(view: UserLogView) -> Group:
    shown = table(line("Changes to local users"), ("at", "by", "action", "detail"))
    for e in view.entries:
        add_row(shown, when(e.at), e.by, e.action, e.detail)
    problems = [line(("chain broken:", "red"), " ", p) for p in view.chain_problems]
    if view.outside_changes:
        problems.append(line(("changed outside the API:", "red"), " ",
                             f"{view.outside_changes} time(s); see users_file.changed_outside_api above"))
    return Group(shown, *problems)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user's name; they act as local:NAME.")],
    role: RoleOpt,
    replace: Annotated[bool, typer.Option(help="Issue a new token for an existing user and set their roles.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a user and print their token once (only its hash is kept)."""
    with connect(as_json) as client:
        added = client.add_user(name, role, replace=replace)
        if as_json:
            emit_json(added.json)
            return
        user = added.model
        out.say("user ", (user.name, "bold"), f" ({', '.join(user.roles)}) added; acts as ", user.actor_id)
        out.say("token (shown once, keep it secret):")
        print(user.token)
        out.say("use it with: export PAUSEGATE_TOKEN=", user.token)


@app.command("list")
def list_users(as_json: JsonOpt = False) -> None:
    """Every local user and their roles."""
    with connect(as_json) as client:
        show(client.users(), as_json, _users)


@app.command("roles")
def roles(
    name: Annotated[str, typer.Argument(help="The user's name.")],
    role: RoleOpt,
    as_json: JsonOpt = False,
) -> None:
    """Give a user exactly these roles (their token stays valid)."""
    with connect(as_json) as client:
        changed = client.set_roles(name, role)
        if as_json:
            emit_json(changed.json)
            return
        out.say("user ", (changed.model.name, "bold"), " now has roles ", ", ".join(changed.model.roles))


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The user's name.")], as_json: JsonOpt = False) -> None:
    """Remove a user; their token proves nobody from now on."""
    with connect(as_json) as client:
        client.remove_user(name)
        if as_json:
            emit_json({"removed": name})
            return
        out.say("user ", (name, "bold"), " removed")


@app.command("log")
def log(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The newest this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Every change to users and roles; exit 1 if the log's chain is broken or the file was changed outside the API."""
    with connect(as_json) as client:
        view = client.user_log(limit=limit)
        show(view, as_json, _log)
        if view.model.chain_problems or view.model.outside_changes:
            raise typer.Exit(EXIT_REFUSED)
