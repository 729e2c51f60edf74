"""Local bearer tokens for the embedded stack: a file of users, roles and token hashes.

A token is shown once, when the user is added; the file keeps only its SHA-256. The tokens
carry 256 random bits, so a fast hash is enough: nobody brute-forces that space, and a
slow KDF would only make every API request slower.

A local user's actor id is ``local:<name>``: names live in their own namespace, apart from OIDC
subjects (``oidc:<issuer>#<sub>``), and a name cannot contain ``:`` or ``#``. A role is global
(``ciso``) or held for one program only (``ciso@employee-telemetry``).

This module only reads and writes the file. Changes people make go through the API
(``pausegate.auth.users.file``), which records each one in a signed log; the file is its store.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import Field, ValidationError, field_validator

from pausegate.auth.base import AuthenticationError
from pausegate.errors import ConfigError
from pausegate.models.base import Model
from pausegate.models.people import Actor
from pausegate.models.runbook import SLUG
from pausegate.policy.authority import ADMIN_ROLE

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "pgt_"
LOCAL_PREFIX = "local:"
NAME = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}"
NAME_PATTERN = rf"^{NAME}$"
ROLE_NAME = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}"
PROGRAM_ID = SLUG.removeprefix("^").removesuffix("$")  # the runbook's program id, unanchored to embed
ROLE = rf"{ROLE_NAME}(?:@{PROGRAM_ID})?"
ROLE_PATTERN = rf"^{ROLE}$"
"""A role as a local user holds it: ``ciso`` (every program) or ``ciso@employee-telemetry`` (that program only)."""
FIRST_ADMIN = "admin"

FIRST_ADMIN_ROLES = (ADMIN_ROLE, "incident-commander")


def valid_name(name: str) -> bool:
    # fullmatch: ``$`` in Python's re also matches before a final newline.
    return re.fullmatch(NAME, name) is not None


def role_problem(role: str) -> str | None:
    """Why ``role`` cannot be held by a local user, or None."""
    if re.fullmatch(ROLE, role) is None:
        return f"role {role!r} must be NAME or NAME@PROGRAM (NAME: {ROLE_NAME}, PROGRAM: a program id)"
    name, _, program = role.partition("@")
    if program and name == ADMIN_ROLE:
        return f"role {role!r}: {ADMIN_ROLE} is API-wide and cannot be held for one program"
    return None


def split_roles(roles: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Global roles, and roles held per program, from roles written ``NAME`` or ``NAME@PROGRAM``."""
    global_roles: set[str] = set()
    scoped: dict[str, set[str]] = {}
    for role in roles:
        name, _, program = role.partition("@")
        if program:
            scoped.setdefault(program, set()).add(name)
        else:
            global_roles.add(name)
    return sorted(global_roles), {p: sorted(r) for p, r in sorted(scoped.items())}


def local_actor_id(name: str) -> str:
    return LOCAL_PREFIX + name


class LocalUser(Model):
    """One local user: name, roles and the SHA-256 of their token."""

    name: str = Field(pattern=NAME_PATTERN)
    roles: list[str]
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[str]) -> list[str]:
        problems = [p for p in map(role_problem, roles) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return roles

    @property
    def actor_id(self) -> str:
        return local_actor_id(self.name)

    @property
    def credential(self) -> str:
        """A fingerprint of the token's hash, for the change log: tells whether the token changed,
        and nothing about the token."""
        return hashlib.sha256(bytes.fromhex(self.token_sha256)).hexdigest()[:16]

    def actor(self) -> Actor:
        roles, program_roles = split_roles(self.roles)
        return Actor(id=self.actor_id, roles=roles, program_roles=program_roles)


class UsersFile(Model):
    """The users file's content."""

    version: int = 1
    users: list[LocalUser] = Field(default_factory=list)


def token_digest(token: str) -> str:
    """What is kept of a token: its SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_user(name: str, roles: list[str]) -> None:
    """``ValueError`` naming what is wrong with a user name or its roles."""
    if not valid_name(name):
        raise ValueError(f"user name {name!r} must match {NAME_PATTERN}")
    if not roles:
        raise ValueError("a user needs at least one role")
    problems = [p for p in map(role_problem, roles) if p]
    if problems:
        raise ValueError("; ".join(problems))


class UnknownUser(LookupError):
    """No local user has this name."""


class UserExists(ValueError):
    """A local user with this name exists already."""


class LocalTokens:
    """Users and token hashes in a JSON file (0600), re-read when it changes so that a change made
    by another API process takes effect without a restart.

    ``on_reload`` is called after every (re)reading of a changed file: the API checks there that the
    file is still what its change log says (``pausegate.auth.users.file.UsersFileCheck``).
    """

    def __init__(self, users_file: Path, *, on_reload: Callable[[], None] | None = None) -> None:
        self.users_file = Path(users_file)
        self.on_reload = on_reload
        self._cache: tuple[tuple[int, int, int], UsersFile] | None = None

    # ------------------------------------------------------------ reading

    def _load(self) -> UsersFile:
        try:
            stat = self.users_file.stat()
        except FileNotFoundError:
            return UsersFile()
        # The inode too: a replaced file (every write replaces it) is re-read even within one mtime tick.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        if stat.st_mode & 0o077:
            log.warning("users_file_not_owner_only", path=str(self.users_file), mode=oct(stat.st_mode & 0o777))
        try:
            data = UsersFile.model_validate_json(self.users_file.read_bytes())
        except ValidationError as exc:
            raise ConfigError(f"{self.users_file}: not a valid users file: {exc.errors()[0]['msg']}") from exc
        self._cache = (stamp, data)
        if self.on_reload is not None:
            try:
                self.on_reload()
            except Exception as exc:  # the check must never lock people out; it says loudly that it failed
                log.error("users_file_check_failed", path=str(self.users_file), error=str(exc) or type(exc).__name__)
        return data

    def users(self) -> list[LocalUser]:
        """Every local user (hashes only)."""
        return list(self._load().users)

    def user(self, name: str) -> LocalUser:
        found = next((u for u in self._load().users if u.name == name), None)
        if found is None:
            raise UnknownUser(name)
        return found

    def has_users(self) -> bool:
        return bool(self._load().users)

    def read_bytes(self) -> bytes | None:
        """The file exactly as it is on disk (None when there is none), for its digest."""
        try:
            return self.users_file.read_bytes()
        except FileNotFoundError:
            return None

    def verify(self, token: str) -> Actor:
        """The actor whose token this is; ``AuthenticationError`` otherwise."""
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationError("not a local token")
        digest = token_digest(token)
        found: LocalUser | None = None
        # Compare against every entry, so timing says nothing about which prefix matched.
        for user in self._load().users:
            if hmac.compare_digest(user.token_sha256, digest):
                found = user
        if found is None:
            raise AuthenticationError("unknown token")
        return found.actor()

    async def authenticate(self, token: str) -> Actor:
        # File I/O happens only when the file changed; cheap enough to stay on the loop.
        return self.verify(token)

    # ------------------------------------------------------------ writing

    def issue(self, name: str, roles: list[str], *, replace: bool = False) -> tuple[LocalUser, str]:
        """Add ``name`` with ``roles``; returns the user and their new token (shown once, never stored).

        An existing name is an error unless ``replace``, which issues a new token (voiding the old one)
        and sets the roles.
        """
        check_user(name, roles)
        current = self._load()
        if any(u.name == name for u in current.users) and not replace:
            raise UserExists(f"user {name!r} already exists (replace it to issue a new token)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = LocalUser(
            name=name, roles=sorted(set(roles)), token_sha256=token_digest(token), created_at=datetime.now(UTC)
        )
        self._write(UsersFile(users=[*(u for u in current.users if u.name != name), user]))
        return user, token

    def add(self, name: str, roles: list[str], *, replace: bool = False) -> str:
        """``issue``, returning only the token."""
        return self.issue(name, roles, replace=replace)[1]

    def set_roles(self, name: str, roles: list[str]) -> LocalUser:
        """Give ``name`` exactly ``roles`` (the token stays)."""
        check_user(name, roles)
        current = self._load()
        user = self.user(name).model_copy(update={"roles": sorted(set(roles))})
        self._write(UsersFile(users=[user if u.name == name else u for u in current.users]))
        return user

    def remove(self, name: str) -> LocalUser:
        """Remove ``name``; their token proves nobody from now on."""
        current = self._load()
        user = self.user(name)
        self._write(UsersFile(users=[u for u in current.users if u.name != name]))
        return user

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
    None when users already exist (their tokens cannot be shown again).

    Unrecorded: the embedded stack uses ``UserDirectory.ensure_first_admin``, which logs it.
    """
    tokens = LocalTokens(users_file)
    if tokens.has_users():
        return None
    return tokens.add(name, list(roles))
