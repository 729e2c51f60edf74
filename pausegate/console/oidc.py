"""OIDC sign-in for the console: authorization code with PKCE (RFC 7636), nonce and state.

The browser is sent to the identity provider with a ``state``, a ``nonce`` and an S256
``code_challenge``; the three secrets behind them (state, nonce, ``code_verifier``) stay on the server,
in a *pending sign-in* keyed by the SHA-256 of a random id that only this browser holds (the pre-session
cookie). The provider sends the browser back with a code; the callback takes the pending sign-in out
of the store (single use: whether the answer matches or not, it is gone), checks ``state``, exchanges
the code with the ``code_verifier`` (Authlib's httpx client), and verifies the ID token with the API's
own ``OidcVerifier`` (same issuer, audience, JWKS cache and groups mapping), then checks its ``nonce``
among the claims that verification returns.

Why the pre-session cookie is ``SameSite=Lax`` when the session cookie is ``Strict``: the provider's
redirect back is a top-level navigation *from another site*; a Strict cookie is not sent on it, so the
callback could not find its pending sign-in. Lax is sent on cross-site top-level GETs only, which is
exactly that navigation; a cross-site form post or sub-request still arrives without it. The cookie's
Path is the OIDC routes only, it lives ten minutes and is single use, so what Lax exposes is one
round trip that the attacker cannot complete without the state and the code_verifier held here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from pausegate.config import OidcSettings

PENDING_COOKIE = "pausegate_oidc"
SECURE_PENDING_COOKIE = "__Secure-pausegate_oidc"
PENDING_PATH = "/console/sign-in/oidc"
CALLBACK_PATH = PENDING_PATH + "/callback"
PENDING_SECONDS = 10 * 60
MAX_PENDING = 10_000
"""Starting a sign-in needs no credential, so the store is bounded: past this, attempts of the client
holding the most go first, oldest first."""
MAX_PENDING_PER_CLIENT = 20
"""A client (the address the request came from) past this many pending attempts loses its own oldest:
a flood from one place never evicts anyone else's sign-in."""
EXCHANGE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PendingSignIn:
    """What one browser's sign-in attempt must be answered with; never leaves the server."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str
    created: float
    client: str = ""

    def state_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.state.encode())

    def nonce_matches(self, offered: object) -> bool:
        """Whether an ID token's ``nonce`` claim is this attempt's: a token minted for another sign-in
        (a replayed or injected one) has another nonce or none."""
        return isinstance(offered, str) and hmac.compare_digest(offered.encode(), self.nonce.encode())


def pending_cookie(secure: bool) -> str:
    """The pre-session cookie's name; over TLS with the ``__Secure-`` prefix (it has a Path, so not ``__Host-``)."""
    return SECURE_PENDING_COOKIE if secure else PENDING_COOKIE


def _key(pending_id: str) -> str:
    return hashlib.sha256(pending_id.encode("utf-8", "surrogatepass")).hexdigest()


class PendingSignIns:
    """Pending sign-ins by the SHA-256 of their cookie's id, in memory, single use, expiring, bounded
    in all and per client."""

    def __init__(self, *, ttl_seconds: float = PENDING_SECONDS, limit: int = MAX_PENDING,
                 per_client: int = MAX_PENDING_PER_CLIENT, clock: Callable[[], float] = time.time) -> None:
        self.ttl_seconds = ttl_seconds
        self.limit = limit
        self.per_client = per_client
        self.clock = clock
        self._pending: OrderedDict[str, PendingSignIn] = OrderedDict()
        self._by_client: dict[str, OrderedDict[str, None]] = {}

    def open(self, next_path: str, client: str = "") -> tuple[str, PendingSignIn]:
        """A new attempt by ``client`` (where the request came from); returns the id for the cookie
        (only its hash is kept) and the attempt."""
        now = self.clock()
        while self._pending and now - next(iter(self._pending.values())).created > self.ttl_seconds:
            self._drop(next(iter(self._pending)))  # insertion order is age order
        own = self._by_client.get(client)
        while own and len(own) >= self.per_client:
            self._drop(next(iter(own)))
        while self._pending and len(self._pending) >= self.limit:
            heaviest = max(self._by_client.values(), key=len)
            self._drop(next(iter(heaviest)))
        pending = PendingSignIn(state=generate_token(32), nonce=generate_token(32), code_verifier=generate_token(64),
                                next_path=next_path, created=now, client=client)
        pending_id = secrets.token_urlsafe(32)
        key = _key(pending_id)
        self._pending[key] = pending
        self._by_client.setdefault(client, OrderedDict())[key] = None
        return pending_id, pending

    def take(self, pending_id: str | None) -> PendingSignIn | None:
        """The live attempt with this id, removed from the store (a second answer finds nothing)."""
        if not pending_id or len(pending_id) > 100:
            return None
        pending = self._drop(_key(pending_id))
        if pending is None or self.clock() - pending.created > self.ttl_seconds:
            return None
        return pending

    def _drop(self, key: str) -> PendingSignIn | None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            own = self._by_client[pending.client]
            del own[key]
            if not own:
                del self._by_client[pending.client]
        return pending

    def __len__(self) -> int:
        return len(self._pending)


def offered(settings: OidcSettings | None) -> bool:
    """Whether ``[api.oidc]`` configures the console as a client (the sign-in page offers the button)."""
    return (settings is not None and bool(settings.client_id) and bool(settings.authorization_endpoint)
            and bool(settings.token_endpoint))


def oauth_client(settings: OidcSettings, redirect_uri: str) -> AsyncOAuth2Client:
    """Authlib's httpx client for this deployment: public (PKCE only) without a secret, else
    ``client_secret_basic``."""
    secret = settings.client_secret.get_secret_value() if settings.client_secret is not None else None
    return AsyncOAuth2Client(
        client_id=settings.client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        scope="openid email profile",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=EXCHANGE_TIMEOUT_SECONDS,
    )


def authorization_url(settings: OidcSettings, redirect_uri: str, pending: PendingSignIn) -> str:
    """Where to send the browser: the provider's authorization endpoint with state, nonce and the
    S256 challenge of the pending attempt's verifier."""
    assert settings.authorization_endpoint is not None
    client = oauth_client(settings, redirect_uri)
    url, _ = client.create_authorization_url(
        settings.authorization_endpoint, state=pending.state, nonce=pending.nonce,
        code_verifier=pending.code_verifier,
    )
    return str(url)


async def exchange(settings: OidcSettings, redirect_uri: str, pending: PendingSignIn, code: str) -> dict[str, Any]:
    """The token endpoint's answer for ``code``, proved by the attempt's ``code_verifier``.

    Raises Authlib's ``OAuthError`` (the provider refused) or ``httpx.HTTPError`` (unreachable)."""
    assert settings.token_endpoint is not None
    async with oauth_client(settings, redirect_uri) as client:
        token = await client.fetch_token(
            settings.token_endpoint, grant_type="authorization_code", code=code,
            code_verifier=pending.code_verifier,
        )
    return dict(token)

