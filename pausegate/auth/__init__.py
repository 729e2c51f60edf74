"""Who is calling: local tokens (embedded) or OIDC JWTs (production), behind one protocol."""

from __future__ import annotations

import httpx

from pausegate.auth.base import AuthenticationError, Authenticator
from pausegate.auth.local import ADMIN_ROLE, LocalTokens, ensure_first_admin
from pausegate.auth.oidc import OidcVerifier, looks_like_jwt
from pausegate.config import Settings
from pausegate.models.pause import Actor

__all__ = [
    "ADMIN_ROLE",
    "AuthenticationError",
    "Authenticator",
    "CombinedAuthenticator",
    "LocalTokens",
    "OidcVerifier",
    "build_authenticator",
    "ensure_first_admin",
]


class CombinedAuthenticator:
    """JWTs go to OIDC when it is configured; everything else to the local tokens."""

    def __init__(self, local: LocalTokens | None, oidc: OidcVerifier | None) -> None:
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


def build_authenticator(settings: Settings, http: httpx.AsyncClient) -> CombinedAuthenticator:
    """The deployment's authenticator: local tokens always, OIDC when ``[api.oidc]`` is set."""
    oidc = OidcVerifier(settings.api.oidc, http) if settings.api.oidc is not None else None
    return CombinedAuthenticator(LocalTokens(settings.api.users_file), oidc)
