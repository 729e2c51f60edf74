"""The request and answer shapes of ``/v1/users``: here, so that the CLI reads them without importing the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from pausegate.auth.local import LocalUser
from pausegate.auth.users.log import UserChange
from pausegate.models.base import Model

MAX_ROLES = 100


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
