"""Local users are managed through the API by an admin, and every change is in a signed, chained log.

The world's people (``tests.api.support.PEOPLE``) are added through the same log before each test,
as the embedded stack adds its first admin, so the log starts out describing the users file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
from structlog.testing import capture_logs

from pausegate.auth import users_log_path
from tests.api.support import ApiWorld, api_world, local
from tests.support.fault_report import record_result
from tests.support.harness import Harness


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> Any:
    async with api_world(harness, tmp_path / "api") as world:
        yield world


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def user_log(api: ApiWorld) -> dict[str, Any]:
    r = await api.client("ada").get("/v1/users/log", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return dict(r.json())


class TestUserManagement:
    async def test_an_admin_adds_changes_and_removes_a_user_and_the_log_verifies(self, api: ApiWorld) -> None:
        ada = api.client("ada")
        users_file = api.settings.api.users_file

        added = await ada.post("/v1/users", json={"name": "vera", "roles": ["security-analyst"]})
        assert added.status_code == 201, added.text
        token = added.json()["token"]
        assert added.json()["actor_id"] == "local:vera"
        # Only the token's hash is kept, in a file only its owner can read.
        assert token not in users_file.read_text()
        assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
        vera = api.client(token=token)
        assert (await vera.get("/v1/whoami")).json() == {"id": "local:vera", "roles": ["security-analyst"]}

        listed = (await ada.get("/v1/users")).json()
        assert {u["name"] for u in listed} >= {"vera", "ada", "carol"}
        assert not any("token" in u or "token_sha256" in u for u in listed)

        changed = await ada.put("/v1/users/vera/roles", json={"roles": ["security-lead"]})
        assert changed.status_code == 200 and changed.json()["roles"] == ["security-lead"]
        assert (await vera.get("/v1/whoami")).json()["roles"] == ["security-lead"]  # same token, new roles

        removed = await ada.delete("/v1/users/vera")
        assert removed.status_code == 204
        assert (await vera.get("/v1/whoami")).status_code == 401

        view = await user_log(api)
        assert view["chain_problems"] == [] and view["outside_changes"] == 0
        mine = [(e["by"], e["action"], [c["name"] for c in e["changes"]]) for e in view["entries"]
                if e["by"] == local("ada")]
        assert mine == [
            (local("ada"), "user.added", ["vera"]),
            (local("ada"), "user.roles_changed", ["vera"]),
            (local("ada"), "user.removed", ["vera"]),
        ]
        # Each entry carries the users file's digest after the change: the newest is the file as it is.
        assert view["entries"][-1]["users_sha256"] == view["users_sha256"] == file_sha256(users_file)
        log_path = users_log_path(users_file)
        assert stat.S_IMODE(log_path.stat().st_mode) == 0o600

        # The chain check is real: with a line taken out of the middle, the log says so.
        lines = log_path.read_bytes().splitlines(keepends=True)
        log_path.write_bytes(b"".join([*lines[:1], *lines[2:]]))
        problems = (await user_log(api))["chain_problems"]
        assert any("does not follow line" in p for p in problems), problems

    async def test_a_hand_edit_of_the_users_file_is_detected_on_load_and_recorded(self, api: ApiWorld) -> None:
        users_file = api.settings.api.users_file
        before = (await user_log(api))["entries"]

        # Someone with write access to the file mints a CISO of their own.
        content = json.loads(users_file.read_text())
        content["users"].append({
            "name": "mallory", "roles": ["ciso"], "token_sha256": hashlib.sha256(b"pgt_mine").hexdigest(),
            "created_at": datetime.now(UTC).isoformat(),
        })
        await asyncio.to_thread(users_file.write_text, json.dumps(content))

        # The next request that reads the changed file (any local token) finds it and says so loudly.
        with capture_logs() as logs:
            assert (await api.client("carol").get("/v1/whoami")).status_code == 200
        assert any(e["event"] == "users_file_changed_outside_the_api" and e["log_level"] == "error" for e in logs)

        # It is on record in the signed log, by nobody the API knows, with what changed.
        view = await user_log(api)
        new = view["entries"][len(before):]
        assert [e["action"] for e in new] == ["users_file.changed_outside_api"]
        assert new[0]["by"] == "pausegate" and "mallory added with roles ciso" in new[0]["detail"]
        assert new[0]["changes"][0]["name"] == "mallory" and new[0]["changes"][0]["roles"] == ["ciso"]
        assert new[0]["users_sha256"] == file_sha256(users_file)
        assert view["outside_changes"] == 1 and view["chain_problems"] == []

        # Recorded once: reading the log again finds the file as the log now describes it.
        assert (await user_log(api))["outside_changes"] == 1
        record_result("users file edited outside the API", "an approver added by hand", injected=1,
                      outcome="detected on the next read, logged as an error and recorded in the signed user log")

    async def test_a_non_admin_is_refused_every_user_route_and_the_refusals_are_logged(self, api: ApiWorld) -> None:
        users_file = api.settings.api.users_file
        digest = file_sha256(users_file)
        carol = api.client("carol")  # the commander: powers over pauses, none over users
        attempts = {
            "add_user": await carol.post("/v1/users", json={"name": "mine", "roles": ["ciso"]}),
            "list_users": await carol.get("/v1/users"),
            "read_user_log": await carol.get("/v1/users/log"),
            "change_roles": await carol.put("/v1/users/carol/roles", json={"roles": ["ciso"]}),
            "remove_user": await carol.delete("/v1/users/ann"),
        }
        for action, r in attempts.items():
            assert r.status_code == 403 and r.json()["error"] == "wrong_role", (action, r.text)
        assert file_sha256(users_file) == digest  # nothing changed

        await api.app.state.api.recorder.flush()
        logged = {(e.actor, e.program, e.action) for e in api.app.state.api.refusals.entries()}
        assert {(local("carol"), None, f"refused.{a}") for a in attempts} <= logged
        assert (await user_log(api))["entries"][-1]["by"] != local("carol")

    async def test_the_last_admin_stays_and_bad_names_roles_and_duplicates_are_refused(self, api: ApiWorld) -> None:
        ada = api.client("ada")
        last = await ada.delete("/v1/users/ada")
        assert last.status_code == 409 and last.json()["error"] == "last_admin"
        demoted = await ada.put("/v1/users/ada/roles", json={"roles": ["cpo"]})
        assert demoted.status_code == 409 and demoted.json()["error"] == "last_admin"
        replaced = await ada.post("/v1/users", json={"name": "ada", "roles": ["cpo"], "replace": True})
        assert replaced.status_code == 409 and replaced.json()["error"] == "last_admin"

        # A local name cannot look like another namespace's id; admin cannot be held for one program.
        for body in ({"name": "oidc:https://idp.example.test#cleo", "roles": ["ciso"]},
                     {"name": "cleo#2", "roles": ["ciso"]},
                     {"name": "zed", "roles": [f"admin@{api.program}"]},
                     {"name": "zed", "roles": ["ciso@Not A Program"]}):
            r = await ada.post("/v1/users", json=body)
            assert r.status_code == 422 and r.json()["error"] == "invalid_user", (body, r.text)
        duplicate = await ada.post("/v1/users", json={"name": "ann", "roles": ["ciso"]})
        assert duplicate.status_code == 409 and duplicate.json()["error"] == "user_exists"
        unknown = await ada.delete("/v1/users/nobody")
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_user"
        assert (await user_log(api))["outside_changes"] == 0

        # With a second admin, the first may step down (and is no admin from then on).
        assert (await ada.post("/v1/users", json={"name": "abe", "roles": ["admin"]})).status_code == 201
        assert (await ada.put("/v1/users/ada/roles", json={"roles": ["cpo"]})).status_code == 200
        assert (await ada.get("/v1/users")).status_code == 403
