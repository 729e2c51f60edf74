"""Local bearer tokens for the embedded stack: a file of users, roles and token hashes.

A token is shown once, when the user is added; the file keeps only its SHA-256. The tokens
carry 256 random bits, so a fast hash is enough: nobody brute-forces that space, and a
slow KDF would only make every API request slower.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError

from pausegate.auth.base import AuthenticationError
from pausegate.errors import ConfigError
from pausegate.models.base import Model
from pausegate.models.pause import Actor
from pausegate.policy.authority import ADMIN_ROLE

TOKEN_PREFIX = "pgt_"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$"
ROLE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
FIRST_ADMIN = "admin"

FIRST_ADMIN_ROLES = (ADMIN_ROLE, "incident-commander")


class LocalUser(Model):
    """One local user: name, roles and the SHA-256 of their token."""

    name: str = Field(pattern=NAME_PATTERN)
    roles: list[str]
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime


class UsersFile(Model):
    """The users file's content."""

    version: int = 1
    users: list[LocalUser] = Field(default_factory=list)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class LocalTokens:
    """Users and token hashes in a JSON file (0600), re-read when it changes so that
    ``pausegate users add`` takes effect without restarting the API."""

    def __init__(self, users_file: Path) -> None:
        self.users_file = Path(users_file)
        self._cache: tuple[tuple[int, int], UsersFile] | None = None

    # ------------------------------------------------------------ reading

    def _load(self) -> UsersFile:
        try:
            stat = self.users_file.stat()
        except FileNotFoundError:
            return UsersFile()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = UsersFile.model_validate_json(self.users_file.read_bytes())
        except ValidationError as exc:
            raise ConfigError(f"{self.users_file}: not a valid users file: {exc.errors()[0]['msg']}") from exc
        self._cache = (stamp, data)
        return data

    def users(self) -> list[LocalUser]:
        """Every local user (hashes only)."""
        return list(self._load().users)

    def has_users(self) -> bool:
        return bool(self._load().users)

    def verify(self, token: str) -> Actor:
        """The actor whose token this is; ``AuthenticationError`` otherwise."""
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationError("not a local token")
        digest = _digest(token)
        found: LocalUser | None = None
        # Compare against every entry, so timing says nothing about which prefix matched.
        for user in self._load().users:
            if hmac.compare_digest(user.token_sha256, digest):
                found = user
        if found is None:
            raise AuthenticationError("unknown token")
        return Actor(id=found.name, roles=list(found.roles))

    async def authenticate(self, token: str) -> Actor:
        # File I/O happens only when the file changed; cheap enough to stay on the loop.
        return self.verify(token)

    # ------------------------------------------------------------ writing

    def add(self, name: str, roles: list[str], *, replace: bool = False) -> str:
        """Add ``name`` with ``roles`` and return its new token (shown once, never stored).

        An existing name is an error unless ``replace``, which issues a new token and voids the old one.
        """
        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"user name {name!r} must match {NAME_PATTERN}")
        bad = [r for r in roles if not re.match(ROLE_PATTERN, r)]
        if bad:
            raise ValueError(f"roles {', '.join(map(repr, bad))} must match {ROLE_PATTERN}")
        current = self._load()
        if any(u.name == name for u in current.users) and not replace:
            raise ValueError(f"user {name!r} already exists (use replace to issue a new token)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = LocalUser(
            name=name, roles=sorted(set(roles)), token_sha256=_digest(token), created_at=datetime.now(UTC)
        )
        updated = UsersFile(users=[*(u for u in current.users if u.name != name), user])
        self._write(updated)
        return token

    def _write(self, content: UsersFile) -> None:
        self.users_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.users_file.parent)
        try:
            # mkstemp creates the file 0600; replacing keeps the hashes unreadable to others throughout.
            with os.fdopen(fd, "w") as f:
                f.write(content.model_dump_json(indent=2))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.users_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cache = None


def ensure_first_admin(
    users_file: Path, *, name: str = FIRST_ADMIN, roles: tuple[str, ...] = FIRST_ADMIN_ROLES
) -> str | None:
    """Create the first administrator if the users file has nobody; returns the new token, or
    None when users already exist (their tokens cannot be shown again)."""
    tokens = LocalTokens(users_file)
    if tokens.has_users():
        return None
    return tokens.add(name, list(roles))
