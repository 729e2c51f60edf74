"""What every way of proving who someone is has in common."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pausegate.models.people import Actor


class AuthenticationError(Exception):
    """The bearer token proves nobody: missing, unknown, expired, for another audience, badly signed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@runtime_checkable
class Authenticator(Protocol):
    """Turns a bearer token into a verified actor, or raises ``AuthenticationError``."""

    async def authenticate(self, token: str) -> Actor:
        """The actor the token proves, with the roles it carries."""
        ...
