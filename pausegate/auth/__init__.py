"""Who is calling: local tokens (embedded) or OIDC JWTs (production), behind one protocol.

Identities live in two namespaces, ``local:<name>`` and ``oidc:<issuer>#<sub>``; roles are global or
held for one program (``Actor.program_roles``), resolved per program before any rule runs. Local users
live in a store (``pausegate.auth.users``): the users file, or the API's database.
"""

from __future__ import annotations

import httpx

from pausegate.auth.base import AuthenticationError, Authenticator
from pausegate.auth.local import ADMIN_ROLE, LocalTokens, ensure_first_admin
from pausegate.auth.oidc import OidcVerifier, looks_like_jwt
from pausegate.auth.users.file import UserDirectory, UsersFileCheck, users_log_path
from pausegate.config import Settings
from pausegate.models.people import Actor

__all__ = [
    "ADMIN_ROLE",
    "AuthenticationError",
    "Authenticator",
    "CombinedAuthenticator",
    "LocalTokens",
    "OidcVerifier",
    "UserDirectory",
    "UsersFileCheck",
    "build_authenticator",
    "ensure_first_admin",
    "users_log_path",
]


class CombinedAuthenticator:
    """JWTs go to OIDC when it is configured; everything else to the local tokens."""

    def __init__(self, local: LocalTokens | Authenticator | None, oidc: OidcVerifier | None) -> None:
        self.local = local
        self.oidc = oidc

    async def authenticate(self, token: str) -> Actor:
        if not token or len(token) > 16_384:
            raise AuthenticationError("invalid token")
        if self.oidc is not None and looks_like_jwt(token):
            return await self.oidc.authenticate(token)
        if self.local is not None:
            return await self.local.authenticate(token)
        raise AuthenticationError("invalid token")


def build_authenticator(settings: Settings, http: httpx.AsyncClient, *, local: Authenticator) -> CombinedAuthenticator:
    """The deployment's authenticator: ``local`` tokens always (where the deployment keeps its users:
    ``pausegate.api.backends``), OIDC when ``[api.oidc]`` is set."""
    oidc = OidcVerifier(settings.api.oidc, http) if settings.api.oidc is not None else None
    return CombinedAuthenticator(local, oidc)
