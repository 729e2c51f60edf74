"""Both stores of local users keep the same rules through one interface (``UserStore``): every change in the
signed log, the last admin remains, a change made behind the API is found and described the same way."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.apidb.database import ApiDatabase
from pausegate.auth.local import LocalUser
from pausegate.auth.users.file import UserDirectory
from pausegate.auth.users.log import OUTSIDE, UserChange, UserDelta
from pausegate.auth.users.postgres import PgUserDirectory
from pausegate.auth.users.store import UserStore, outside_change, require_admins_remain
from pausegate.errors import ActionRefused
from pausegate.models.people import Actor
from tests.apidb.support import new_state_database, tamper

KEY = Ed25519PrivateKey.generate()
ADA = Actor(id="local:ada", roles=["admin"])


class Store:
    """A store, and how someone with access to what it is kept in gives ``name`` the admin role behind the API."""

    def __init__(self, users: UserStore, promote: Callable[[str], None]) -> None:
        self.users = users
        self.promote = promote


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "file":
        users_file = tmp_path / "users.json"

        def edit_file(name: str) -> None:
            content = json.loads(users_file.read_text())
            for user in content["users"]:
                if user["name"] == name:
                    user["roles"] = ["admin", *user["roles"]]
            users_file.write_text(json.dumps(content))

        yield Store(UserDirectory(users_file, KEY), edit_file)
        return
    settings, superuser = new_state_database(request.getfixturevalue("postgres")[0])
    db = ApiDatabase(settings)

    def edit_row(name: str) -> None:
        tamper(superuser, "UPDATE api_users SET roles = array_prepend('admin', roles) WHERE name = %s", (name,))

    yield Store(PgUserDirectory(db, KEY), edit_row)
    db.close_sync()


def test_every_change_is_a_line_of_an_intact_log(store: Store) -> None:
    users = store.users
    assert users.ensure_first_admin(name="ada") is not None
    assert users.ensure_first_admin(name="ada") is None  # only when there is nobody
    users.issue(ADA, "ann", ["security-analyst"])
    users.set_roles(ADA, "ann", ["ciso@prog"])
    users.issue(ADA, "ann", ["cto"], replace=True)
    users.remove(ADA, "ann")
    view = users.view(100)
    assert [e.action for e in view.entries] == ["user.added", "user.added", "user.roles_changed", "user.replaced",
                                                "user.removed"]
    assert [e.by for e in view.entries[1:]] == ["local:ada"] * 4
    assert view.chain_problems == [] and view.outside_changes == 0 and users.problems() == []
    assert [u.name for u in users.users()] == ["ada"]


def test_the_last_admin_remains(store: Store) -> None:
    users = store.users
    users.ensure_first_admin(name="ada")
    for refused in (lambda: users.remove(ADA, "ada"), lambda: users.set_roles(ADA, "ada", ["cto"]),
                    lambda: users.issue(ADA, "ada", ["cto"], replace=True)):
        with pytest.raises(ActionRefused) as exc:
            refused()
        assert exc.value.code == "last_admin"
    users.issue(ADA, "bea", ["admin"])
    users.remove(ADA, "ada")  # another admin remains
    assert [u.name for u in users.users()] == ["bea"]


def test_a_change_behind_the_api_is_found_described_and_recorded_once(store: Store) -> None:
    users = store.users
    users.ensure_first_admin(name="ada")
    users.issue(ADA, "mallory", ["security-analyst"])
    store.promote("mallory")
    change = users.check()
    assert change is not None and change.action == OUTSIDE and change.by == "pausegate"
    assert "mallory's roles security-analyst -> admin, security-analyst" in change.detail
    assert [d.name for d in change.changes] == ["mallory"]
    assert users.check() is None  # recorded: the log describes the users again
    view = users.view(100)
    assert view.outside_changes == 1 and view.chain_problems == []


def test_the_shared_rules_are_plain_functions() -> None:
    def user(name: str, *roles: str) -> LocalUser:
        return LocalUser(name=name, roles=list(roles), token_sha256="0" * 64, created_at="2026-01-01T00:00:00Z")

    require_admins_remain([user("ada", "admin"), user("bea", "admin")], "ada", None, "removing ada")
    with pytest.raises(ActionRefused):
        require_admins_remain([user("ada", "admin"), user("bea", "cto")], "ada", ["cto"], "demoting ada")
    logged = [UserChange(at="2026-01-01T00:00:00Z", by="pausegate", action="user.added", users_sha256="1" * 64,
                         prev="0" * 64, changes=[UserDelta(name="ada", roles=["admin"], credential="c")])]
    found = outside_change(logged, {"eve": UserDelta(name="eve", roles=["admin"])}, same="same")
    assert found.detail == "ada removed; eve added with roles admin"
    assert outside_change([], None, same="the bytes differ", first=["unreadable"]).detail == (
        "no change was recorded before; unreadable; the bytes differ")
