"""Who is calling: local tokens (embedded) or OIDC JWTs (production), behind one protocol.

Identities live in two namespaces, ``local:<name>`` and ``oidc:<issuer>#<sub>``; roles are global or
held for one program (``Actor.program_roles``), resolved per program before any rule runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.auth.base import AuthenticationError, Authenticator
from pausegate.auth.directory import UserDirectory, users_log_path
from pausegate.auth.local import ADMIN_ROLE, LocalTokens, ensure_first_admin
from pausegate.auth.oidc import OidcVerifier, looks_like_jwt
from pausegate.config import Settings
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.pause import Actor

if TYPE_CHECKING:
    from pausegate.state.database import StateDatabase

log = structlog.get_logger(__name__)

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
            self._key = open_evidence_store(self.settings.evidence).signing_key
        change = UserDirectory(self.settings.api.users_file, self._key).check()
        if change is not None:
            log.error("users_file_changed_outside_the_api_on_load", detail=change.detail[:500])


def build_authenticator(
    settings: Settings, http: httpx.AsyncClient, *, state_db: StateDatabase | None = None
) -> CombinedAuthenticator:
    """The deployment's authenticator: local tokens always (from the users file, checked against their
    change log on every reload; or from the shared state database when ``state_db`` is given), OIDC when
    ``[api.oidc]`` is set."""
    oidc = OidcVerifier(settings.api.oidc, http) if settings.api.oidc is not None else None
    if state_db is not None:
        from pausegate.state.users import PgTokens

        return CombinedAuthenticator(
            PgTokens(state_db, lambda: open_evidence_store(settings.evidence).signing_key), oidc
        )
    return CombinedAuthenticator(LocalTokens(settings.api.users_file, on_reload=UsersFileCheck(settings)), oidc)
