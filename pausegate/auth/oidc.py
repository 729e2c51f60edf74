"""OIDC JWTs for production: signature from the issuer's JWKS, then issuer, audience and time.

The JWKS is fetched with httpx and cached; a token signed with a key id the cache does not
know triggers one refetch (keys rotate), rate-limited so that garbage tokens cannot make the
API hammer the identity provider.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import structlog

from pausegate.auth.base import AuthenticationError
from pausegate.config import OidcSettings
from pausegate.models.pause import Actor

log = structlog.get_logger(__name__)

# Symmetric and unsigned algorithms would let anyone who knows the public key (or nothing) mint tokens.
_FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
JWKS_TTL_SECONDS = 300.0
JWKS_MIN_REFRESH_SECONDS = 30.0


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts; local tokens have none."""
    return token.count(".") == 2


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path for nested claims (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class OidcVerifier:
    """Verifies OIDC access or ID tokens against one issuer's keys."""

    def __init__(
        self,
        settings: OidcSettings,
        http: httpx.AsyncClient,
        *,
        jwks_ttl_seconds: float = JWKS_TTL_SECONDS,
        min_refresh_seconds: float = JWKS_MIN_REFRESH_SECONDS,
    ) -> None:
        self.settings = settings
        self.http = http
        self.algorithms = [a for a in settings.algorithms if a not in _FORBIDDEN_ALGORITHMS]
        if not self.algorithms:
            raise ValueError("OIDC needs at least one asymmetric signing algorithm")
        self._ttl = jwks_ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is not None:
                age = now - self._fetched_at
                if age < self._min_refresh or (not force and age < self._ttl):
                    return
            try:
                response = await self.http.get(self.settings.jwks_url, timeout=10.0)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("oidc_jwks_unavailable", url=self.settings.jwks_url, error=str(exc))
                if not self._keys:
                    raise AuthenticationError("the identity provider's keys are unavailable") from exc
                return  # keep serving with the keys we had
            keys: dict[str, jwt.PyJWK] = {}
            for entry in document.get("keys", []) if isinstance(document, dict) else []:
                try:
                    key = jwt.PyJWK(entry)
                except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                    continue  # keys of kinds we cannot use (e.g. encryption keys) are skipped
                if entry.get("use", "sig") != "sig":
                    continue
                keys[str(entry.get("kid", ""))] = key
            self._keys = keys
            self._fetched_at = now
            log.info("oidc_jwks_fetched", url=self.settings.jwks_url, keys=len(keys))

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        await self._refresh(force=False)
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(force=True)
            key = self._keys.get(kid)
        if key is None and not kid and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise AuthenticationError("token signed with an unknown key")
        return key

    async def authenticate(self, token: str) -> Actor:
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("malformed token") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthenticationError(f"token algorithm {alg!r} is not accepted")
        key = await self._key_for(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": ["exp", "iss", "aud", s.actor_claim], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("token not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("token from another issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("token signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("invalid token") from exc
        subject = _claim(claims, s.actor_claim)
        if not isinstance(subject, str) or not subject or len(subject) > 200:
            raise AuthenticationError(f"token's {s.actor_claim!r} claim is not a usable identity")
        groups = _claim(claims, s.groups_claim)
        if groups is None:
            # Fail closed and say why: a provider that sends no groups is misconfigured, and
            # letting its users in without roles would hide that.
            raise AuthenticationError(f"token lacks the {s.groups_claim!r} claim that carries roles")
        if isinstance(groups, str):
            groups = groups.split()
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthenticationError(f"token's {s.groups_claim!r} claim is not a list of names")
        return Actor(id=subject, roles=sorted(set(groups)))
