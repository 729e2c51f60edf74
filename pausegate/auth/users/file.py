"""Local users in the users file, and their signed change log beside it, changed together.

Every change (add, replace, new roles, remove) holds the log's lock, first checks that the file is
still what the log's newest line says (recording a difference as a change made outside the API),
then writes the file and appends the change with the file's new digest. ``check`` does the first
step alone; the API runs it whenever it reads a changed users file (``UsersFileCheck``) and before it
shows the log.
"""

from __future__ import annotations

import json
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from pausegate.auth.local import FIRST_ADMIN, FIRST_ADMIN_ROLES, LocalTokens, LocalUser, UsersFile
from pausegate.auth.users.log import OUTSIDE, Action, UserChange, UserDelta, file_digest, user_log
from pausegate.auth.users.store import change_entry, delta, outside_change, require_admins_remain
from pausegate.auth.users.views import UserLogView
from pausegate.config import Settings
from pausegate.models.people import Actor
from pausegate.records.files import FileMedium
from pausegate.records.log import Appending

log = structlog.get_logger(__name__)


def users_log_path(users_file: Path) -> Path:
    """The change log beside the users file: ``users.json`` → ``users-log.jsonl`` (head: ``users-log.head.json``)."""
    return users_file.with_name(f"{users_file.stem}-log.jsonl")


class UserDirectory:
    """The users file at ``users_file`` and its change log, signed with the deployment's ``key``
    (a ``pausegate.auth.users.store.UserStore``)."""

    def __init__(self, users_file: Path, key: Ed25519PrivateKey, *, log_path: Path | None = None) -> None:
        self.tokens = LocalTokens(users_file)
        self.medium = FileMedium(log_path or users_log_path(Path(users_file)))
        self.log = user_log(self.medium, key)

    # ------------------------------------------------------------ reading

    def users(self) -> list[LocalUser]:
        return sorted(self.tokens.users(), key=lambda u: u.name)

    def view(self, limit: int) -> UserLogView:
        """The newest ``limit`` entries, after checking the file against the log."""
        self.check()
        entries = list(self.log.entries())
        return UserLogView(
            entries=entries[-limit:],
            chain_problems=self.log.problems(),
            outside_changes=sum(1 for e in entries if e.action == OUTSIDE),
            users_sha256=file_digest(self.tokens.read_bytes()),
        )

    def problems(self) -> list[str]:
        return self.log.problems()

    def check(self) -> UserChange | None:
        """Compare the users file with the log now; a difference is recorded (and returned)."""
        with self.log.held() as held:
            return self._reconcile(held)

    # ------------------------------------------------------------ changing

    def issue(self, by: Actor | None, name: str, roles: list[str], *, replace: bool = False) -> tuple[LocalUser, str]:
        """Add (or replace) a user; returns them and their token, shown once."""
        with self.log.held() as held:
            self._reconcile(held)
            existed = any(u.name == name for u in self.tokens.users())
            if existed and replace:
                require_admins_remain(self.tokens.users(), name, sorted(set(roles)),
                                      f"replacing {name} with roles {', '.join(roles)}")
            user, token = self.tokens.issue(name, roles, replace=replace)
            action: Action = "user.replaced" if existed else "user.added"
            self._record(held, by, action, [delta(user)], f"{name} with roles {', '.join(user.roles)}")
        return user, token

    def set_roles(self, by: Actor | None, name: str, roles: list[str]) -> LocalUser:
        with self.log.held() as held:
            self._reconcile(held)
            before = self.tokens.user(name)
            after = sorted(set(roles))
            require_admins_remain(self.tokens.users(), name, after, f"giving {name} roles {', '.join(after)}")
            user = self.tokens.set_roles(name, roles)
            self._record(held, by, "user.roles_changed", [delta(user)],
                         f"{name}: {', '.join(before.roles)} -> {', '.join(user.roles)}")
        return user

    def remove(self, by: Actor | None, name: str) -> LocalUser:
        with self.log.held() as held:
            self._reconcile(held)
            self.tokens.user(name)
            require_admins_remain(self.tokens.users(), name, None, f"removing {name}")
            user = self.tokens.remove(name)
            self._record(held, by, "user.removed", [UserDelta(name=name, roles=None)], f"{name} removed")
        return user

    def ensure_first_admin(self, *, name: str = FIRST_ADMIN, roles: tuple[str, ...] = FIRST_ADMIN_ROLES) -> str | None:
        """Create (and record) the first administrator when there are no users; their token, or None."""
        with self.log.held() as held:
            self._reconcile(held)
            if self.tokens.has_users():
                return None
            user, token = self.tokens.issue(name, list(roles))
            self._record(held, None, "user.added", [delta(user)], f"first administrator {name}")
        return token

    # ------------------------------------------------------------ internals

    def _record(self, held: Appending[UserChange], by: Actor | None, action: Action, changes: list[UserDelta],
                detail: str) -> UserChange:
        entry = held.append(change_entry(by, action, changes, detail, file_digest(self.tokens.read_bytes())))
        log.info("users_changed", action=action, by=entry.by, users=[c.name for c in changes])
        return entry

    def _reconcile(self, held: Appending[UserChange]) -> UserChange | None:
        """Under the lock: record the users file's difference from the log's newest entry, if any."""
        content = self.tokens.read_bytes()
        digest = file_digest(content)
        entries = list(self.log.entries())
        expected = entries[-1].users_sha256 if entries else file_digest(None)
        if digest == expected:
            return None
        now: dict[str, UserDelta] | None = {}
        invalid: list[str] = []
        if content is not None:
            try:
                now = {u.name: delta(u) for u in UsersFile.model_validate(json.loads(content)).users}
            except (ValueError, ValidationError):
                invalid.append("the file is not a valid users file")
                now = None
        change = outside_change(entries, now, same="the content differs, the users and roles do not",
                                first=invalid)
        log.error("users_file_changed_outside_the_api", path=str(self.tokens.users_file), expected_sha256=expected,
                  found_sha256=digest, detail=change.detail[:500])
        return held.append(change.entry(digest))


class UsersFileCheck:
    """Run by ``LocalTokens`` whenever it reads a changed users file: is the file still what its
    change log says? A difference is logged loudly and recorded in the log (``UserDirectory.check``).

    The deployment's key is loaded on first use, so building the API (or its OpenAPI document) does
    not touch the evidence directory.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key: Ed25519PrivateKey | None = None

    def __call__(self) -> None:
        if self._key is None:
            from pausegate.evidence.open_store import open_evidence_store

            self._key = open_evidence_store(self.settings.evidence).signing_key
        change = UserDirectory(self.settings.api.users_file, self._key).check()
        if change is not None:
            log.error("users_file_changed_outside_the_api_on_load", detail=change.detail[:500])
