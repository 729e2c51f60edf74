"""Local users in the API's database (real PostgreSQL): shared by replicas, their rows signed, imported once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.backends import ensure_first_admin
from pausegate.apidb.database import ApiDatabase
from pausegate.auth.base import AuthenticationError
from pausegate.auth.users.file import UserDirectory
from pausegate.auth.users.postgres import PgTokens, PgUserDirectory
from pausegate.config import ApiSettings, Settings, StateDatabaseSettings
from tests.apidb.support import tamper

KEY = Ed25519PrivateKey.generate()


class TestUsers:
    async def test_a_user_or_role_change_on_one_replica_holds_on_the_other_at_once(
        self, two: tuple[ApiDatabase, ApiDatabase]
    ) -> None:
        a, b = two
        directory = PgUserDirectory(a, KEY)
        token = await asyncio.to_thread(lambda: directory.issue(None, "ann", ["security-analyst"])[1])
        tokens_b = PgTokens(b, KEY)
        assert (await tokens_b.authenticate(token)).roles == ["security-analyst"]
        await asyncio.to_thread(directory.set_roles, None, "ann", ["ciso@prog"])
        actor = await tokens_b.authenticate(token)
        assert actor.roles == [] and actor.program_roles == {"prog": ["ciso"]}
        await asyncio.to_thread(directory.remove, None, "ann")
        with pytest.raises(AuthenticationError):
            await tokens_b.authenticate(token)
        view = await asyncio.to_thread(PgUserDirectory(b, KEY).view, 100)
        assert [e.action for e in view.entries] == ["user.added", "user.roles_changed", "user.removed"]
        assert view.chain_problems == [] and view.outside_changes == 0
        await b.close()
        await a.close()

    async def test_a_row_written_directly_in_the_database_proves_nobody_and_is_recorded(
        self, two: tuple[ApiDatabase, ApiDatabase], state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        a, b = two
        directory = PgUserDirectory(a, KEY)
        token = await asyncio.to_thread(lambda: directory.issue(None, "mallory", ["security-analyst"])[1])
        # mallory's friend with database access gives her the admin role.
        tamper(state_db[1], "UPDATE api_users SET roles = '{admin,security-analyst}' WHERE name = 'mallory'")
        with pytest.raises(AuthenticationError):
            await PgTokens(b, KEY).authenticate(token)
        # The next change, on the other replica, first records the outside one, then itself: one chain.
        await asyncio.to_thread(PgUserDirectory(b, KEY).issue, None, "bob", ["cto"])
        view = await asyncio.to_thread(PgUserDirectory(b, KEY).view, 100)
        assert [e.action for e in view.entries] == ["user.added", "users_file.changed_outside_api", "user.added"]
        outside = [e for e in view.entries if e.action == "users_file.changed_outside_api"]
        assert len(outside) == 1 and "mallory's roles" in outside[0].detail and "not signed" in outside[0].detail
        assert view.chain_problems == []
        await b.close()
        await a.close()


class TestImport:
    async def test_users_of_a_single_process_deployment_move_in_once_and_keep_their_tokens(
        self, state_db: tuple[StateDatabaseSettings, str], tmp_path: Path
    ) -> None:
        users_file = tmp_path / "users.json"
        old = UserDirectory(users_file, KEY)
        ann = old.issue(None, "ann", ["security-analyst"])[1]
        old.issue(None, "ada", ["admin"])
        settings = Settings(api=ApiSettings(users_file=users_file, state="postgres", state_db=state_db[0]))
        assert ensure_first_admin(settings, KEY) is None  # the imported admin is the first admin
        assert ensure_first_admin(settings, KEY) is None  # and only once
        with ApiDatabase(state_db[0]) as db:
            directory = PgUserDirectory(db, KEY)
            assert [u.name for u in directory.users()] == ["ada", "ann"]
            view = directory.view(100)
            assert [e.action for e in view.entries] == ["user.added", "user.added"] and view.chain_problems == []
            assert all("imported from users.json" in e.detail for e in view.entries)
            assert (await PgTokens(db, KEY).authenticate(ann)).id == "local:ann"
            await db.close()

    def test_a_hand_edited_users_file_is_not_imported(
        self, state_db: tuple[StateDatabaseSettings, str], tmp_path: Path
    ) -> None:
        users_file = tmp_path / "users.json"
        UserDirectory(users_file, KEY).issue(None, "ann", ["security-analyst"])
        users_file.write_text(users_file.read_text().replace("security-analyst", "admin"))
        settings = Settings(api=ApiSettings(users_file=users_file, state="postgres", state_db=state_db[0]))
        token = ensure_first_admin(settings, KEY)
        assert token is not None  # nobody imported: a fresh first administrator instead
        with ApiDatabase(state_db[0]) as db:
            assert [u.name for u in PgUserDirectory(db, KEY).users()] == ["admin"]
