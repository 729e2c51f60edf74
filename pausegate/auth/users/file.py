"""Local users as the API manages them: the users file and its signed change log, changed together.

Every change (add, replace, new roles, remove) takes the log's lock, first checks that the file is
still what the log's newest line says (recording a difference as a change made outside the API),
then writes the file and appends the change with the file's new digest. ``check`` does the first
step alone; the API runs it whenever it reads a changed users file and before showing the log.

The request and answer shapes of ``/v1/users`` live here too, so that the CLI reads them without
importing the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, ValidationError

from pausegate.auth.local import (
    FIRST_ADMIN,
    FIRST_ADMIN_ROLES,
    LocalTokens,
    LocalUser,
    UsersFile,
    local_actor_id,
)
from pausegate.auth.user_log import OUTSIDE, Action, UserChange, UserDelta, UserLog, file_digest
from pausegate.evidence.files import canonical_json
from pausegate.models.base import Model
from pausegate.models.pause import SYSTEM_ACTOR, Actor
from pausegate.policy import authority

log = structlog.get_logger(__name__)

MAX_ROLES = 100
_MAX_DELTA_BYTES = 32 * 1024  # the users an outside change lists, so its line stays small
_MAX_BY_ROLES = 50


def users_log_path(users_file: Path) -> Path:
    """The change log beside the users file: ``users.json`` → ``users-log.jsonl`` (head: ``users-log.head.json``)."""
    return users_file.with_name(f"{users_file.stem}-log.jsonl")


# ---------------------------------------------------------------- request and answer shapes


class UserView(Model):
    """A local user as admins see them (never a token or its hash)."""

    name: str
    actor_id: str = Field(description="The id the user acts under: local:<name>.")
    roles: list[str] = Field(description="NAME (every program) or NAME@PROGRAM (that program only).")
    created_at: datetime

    @classmethod
    def of(cls, user: LocalUser) -> UserView:
        return cls(name=user.name, actor_id=user.actor_id, roles=list(user.roles), created_at=user.created_at)


class IssuedUser(UserView):
    """A user just added (or replaced), with their token: shown this once, never stored."""

    token: str


class NewUser(Model):
    """Add a local user; ``replace`` issues a new token (voiding the old one) and sets the roles."""

    name: str = Field(min_length=1, max_length=200, description="Letters, digits, . _ @ - (no : or #).")
    roles: list[str] = Field(min_length=1, max_length=MAX_ROLES)
    replace: bool = False


class RoleChange(Model):
    """The roles a user holds from now on (the token stays)."""

    roles: list[str] = Field(min_length=1, max_length=MAX_ROLES)


class UserLogView(Model):
    """The change log (newest last), every problem with its chain, and what the users file is now."""

    entries: list[UserChange]
    chain_problems: list[str]
    outside_changes: int = Field(description="Changes to the users file found made outside the API, in the whole log.")
    users_sha256: str = Field(description="SHA-256 of the users file now (the newest entry records the same).")


# ---------------------------------------------------------------- the directory


def _state(entries: Iterable[UserChange]) -> dict[str, UserDelta]:
    """The users the log describes: every change applied in order."""
    users: dict[str, UserDelta] = {}
    for entry in entries:
        for delta in entry.changes:
            if delta.roles is None:
                users.pop(delta.name, None)
            else:
                users[delta.name] = delta
    return users


def _delta(user: LocalUser) -> UserDelta:
    return UserDelta(name=user.name, roles=sorted(user.roles), credential=user.credential)


def _differences(known: dict[str, UserDelta], now: dict[str, UserDelta]) -> tuple[list[UserDelta], list[str]]:
    """The users that differ (as they are now; roles None when gone) and a phrase for each."""
    deltas: list[UserDelta] = []
    phrases: list[str] = []
    for name in sorted(known.keys() | now.keys()):
        before, after = known.get(name), now.get(name)
        if before == after:
            continue
        if after is None:
            deltas.append(UserDelta(name=name, roles=None))
            phrases.append(f"{name} removed")
        elif before is None:
            deltas.append(after)
            phrases.append(f"{name} added with roles {', '.join(after.roles or []) or 'none'}")
        else:
            deltas.append(after)
            if before.roles != after.roles:
                phrases.append(f"{name}'s roles {', '.join(before.roles or [])} -> {', '.join(after.roles or [])}")
            if before.credential != after.credential:
                phrases.append(f"{name}'s token replaced")
    return deltas, phrases


def _bounded(deltas: list[UserDelta]) -> tuple[list[UserDelta], bool]:
    kept: list[UserDelta] = []
    size = 0
    for delta in deltas:
        size += len(canonical_json(delta.model_dump(mode="json")))
        if size > _MAX_DELTA_BYTES:
            return kept, True
        kept.append(delta)
    return kept, False


class UserDirectory:
    """The users file at ``users_file`` and its change log, signed with the deployment's ``key``."""

    def __init__(self, users_file: Path, key: Ed25519PrivateKey, *, log_path: Path | None = None) -> None:
        self.tokens = LocalTokens(users_file)
        self.log = UserLog(log_path or users_log_path(Path(users_file)), key)

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

    def check(self) -> UserChange | None:
        """Compare the users file with the log now; a difference is recorded (and returned)."""
        with self.log.locked() as fd:
            return self._reconcile(fd)

    # ------------------------------------------------------------ changing

    def issue(self, by: Actor | None, name: str, roles: list[str], *, replace: bool = False) -> tuple[LocalUser, str]:
        """Add (or replace) a user; returns them and their token, shown once."""
        with self.log.locked() as fd:
            self._reconcile(fd)
            existed = any(u.name == name for u in self.tokens.users())
            if existed and replace:
                self._admins_remain(name, sorted(set(roles)), f"replacing {name} with roles {', '.join(roles)}")
            user, token = self.tokens.issue(name, roles, replace=replace)
            action: Action = "user.replaced" if existed else "user.added"
            self._record(fd, by, action, [_delta(user)], f"{name} with roles {', '.join(user.roles)}")
        return user, token

    def set_roles(self, by: Actor | None, name: str, roles: list[str]) -> LocalUser:
        with self.log.locked() as fd:
            self._reconcile(fd)
            before = self.tokens.user(name)
            after = sorted(set(roles))
            self._admins_remain(name, after, f"giving {name} roles {', '.join(after)}")
            user = self.tokens.set_roles(name, roles)
            self._record(fd, by, "user.roles_changed", [_delta(user)],
                         f"{name}: {', '.join(before.roles)} -> {', '.join(user.roles)}")
        return user

    def remove(self, by: Actor | None, name: str) -> LocalUser:
        with self.log.locked() as fd:
            self._reconcile(fd)
            self.tokens.user(name)
            self._admins_remain(name, None, f"removing {name}")
            user = self.tokens.remove(name)
            self._record(fd, by, "user.removed", [UserDelta(name=name, roles=None)], f"{name} removed")
        return user

    def ensure_first_admin(self, *, name: str = FIRST_ADMIN, roles: tuple[str, ...] = FIRST_ADMIN_ROLES) -> str | None:
        """Create (and record) the first administrator when there are no users; their token, or None."""
        with self.log.locked() as fd:
            self._reconcile(fd)
            if self.tokens.has_users():
                return None
            user, token = self.tokens.issue(name, list(roles))
            self._record(fd, None, "user.added", [_delta(user)], f"first administrator {name}")
        return token

    # ------------------------------------------------------------ internals

    def _admins_remain(self, name: str, roles: list[str] | None, what: str) -> None:
        """Refuse giving ``name`` these ``roles`` (None: removing them) if it takes the admin role
        from the last local user who holds it."""
        before = {u.name: list(u.roles) for u in self.tokens.users()}
        after = {n: r for n, r in before.items() if n != name}
        if roles is not None:
            after[name] = roles

        def admins(users: dict[str, list[str]]) -> list[str]:
            return [local_actor_id(n) for n, held in users.items() if authority.ADMIN_ROLE in held]

        authority.require_an_admin_remains(admins(before), admins(after), what)

    def _record(
        self, fd: int, by: Actor | None, action: Action, changes: list[UserDelta], detail: str
    ) -> UserChange:
        entry = self.log.append(fd, {
            "at": datetime.now(UTC),
            "by": by.id if by is not None else SYSTEM_ACTOR,
            "by_roles": [r[:200] for r in (by.roles if by is not None else [])][:_MAX_BY_ROLES],
            "action": action,
            "changes": changes,
            "detail": detail[:2000],
            "users_sha256": file_digest(self.tokens.read_bytes()),
        })
        log.info("users_changed", action=action, by=entry.by, users=[c.name for c in changes])
        return entry

    def _reconcile(self, fd: int) -> UserChange | None:
        """Under the lock: record the users file's difference from the log's newest entry, if any."""
        content = self.tokens.read_bytes()
        digest = file_digest(content)
        entries = list(self.log.entries())
        expected = entries[-1].users_sha256 if entries else file_digest(None)
        if digest == expected:
            return None
        known = _state(entries)
        now: dict[str, UserDelta] = {}
        phrases: list[str] = []
        if content is not None:
            try:
                now = {u.name: _delta(u) for u in UsersFile.model_validate(json.loads(content)).users}
            except (ValueError, ValidationError):
                phrases.append("the file is not a valid users file")
                now = known
        deltas, described = _differences(known, now)
        phrases += described or ["the content differs, the users and roles do not"]
        if not entries:
            phrases.insert(0, "no change was recorded before")
        kept, truncated = _bounded(deltas)
        detail = "; ".join(phrases)
        log.error(
            "users_file_changed_outside_the_api",
            path=str(self.tokens.users_file),
            expected_sha256=expected,
            found_sha256=digest,
            detail=detail[:500],
        )
        return self.log.append(fd, {
            "at": datetime.now(UTC),
            "by": SYSTEM_ACTOR,
            "action": OUTSIDE,
            "changes": kept,
            "truncated": truncated,
            "detail": detail[:2000],
            "users_sha256": digest,
        })
