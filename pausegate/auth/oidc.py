"""OIDC JWTs for production: signature from the issuer's JWKS, then issuer, audience and time.

The JOSE work (compact JWS, JWKs, the claims' checks) is joserfc's, the library Authlib's own
OIDC client is built on; what is accepted is decided here: the algorithms (never ``none`` or an
HMAC), the required claims, the leeway, and which key a token may name.

The JWKS is fetched with httpx and cached, and the cache degrades gracefully when the identity
provider is slow or down:

* Stale while revalidate: once the cache's TTL has run out, requests keep verifying against the
  cached keys at once while one background task fetches the key set again. No request waits on
  a fetch another request started, except when there are no keys at all.
* First start: with no keys yet, requests do wait, but all of them share the one fetch in flight,
  and that fetch is bounded by ``fetch_timeout_seconds`` (the whole exchange, not each phase).
* Backoff: a failed fetch is recorded (when, and why) and logged once; no fetch is tried again
  for an exponentially growing time (5 s doubling to 5 min by default). Meanwhile requests that
  have a cached key are served and the others are refused at once.
* Unknown key ids (keys rotate; outsiders send garbage) cause at most one refetch per
  ``min_refresh_seconds`` across all requests and key ids. Only the request that triggered the
  refetch waits for it, at most the fetch timeout; other unknown key ids in that window are
  refused at once, so garbage tokens cannot make the API hammer the identity provider.

Who the token proves: the actor id is ``oidc:<issuer>#<subject>``, a namespace no local user name
can enter (local ids are ``local:<name>``). Roles come from the groups claim, but only from groups
the deployment meant for pausegate: with the prefix ``group_prefix`` (``pausegate:`` by default) a
group ``pausegate:<program>:<role>`` is ``<role>`` for that program only and ``pausegate:<role>`` is
``<role>`` everywhere; a group listed in ``group_roles`` grants the roles listed for it. Any other
group grants nothing, whatever it is called: the identity provider's groups are managed for the
whole company, and a group that happens to be called ``admin`` or ``ciso`` is not pausegate's. A verified email
(``email`` with ``email_verified: true``) rides along, lower-cased: approvals of two identities
with the same one count once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from joserfc import jws
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError, MissingAlgorithmError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jwt import JWTClaimsRegistry
from joserfc.jwt import decode as decode_jwt

from pausegate.auth.base import AuthenticationError
from pausegate.auth.local import role_problem, split_roles
from pausegate.config import OidcSettings
from pausegate.errors import ConfigError
from pausegate.models.people import Actor
from pausegate.models.runbook import SLUG

log = structlog.get_logger(__name__)

# Symmetric and unsigned algorithms would let anyone who knows the public key (or nothing) mint tokens.
_FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
JWKS_TTL_SECONDS = 300.0
JWKS_MIN_REFRESH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 10.0
JWKS_BACKOFF_INITIAL_SECONDS = 5.0
JWKS_BACKOFF_MAX_SECONDS = 300.0

_KEYS_UNAVAILABLE = "the identity provider's keys are unavailable"
OIDC_PREFIX = "oidc:"
GROUP_PREFIX = "pausegate:"
_PROGRAM_ID = re.compile(SLUG)
MAX_ACTOR_ID = 512  # Actor.id
_UNKNOWN_KEY = "token signed with an unknown key"
MAX_TOKEN_CHARS = 16_384  # as CombinedAuthenticator; the console's sign-in hands ID tokens straight here
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})  # public keys only: a symmetric ("oct") key never verifies a token
# Checked in this order, so the one reported is the first that fails whatever order the token lists them in.
_TIME_AND_NAME_CLAIMS = ("iat", "nbf", "exp", "iss", "aud", "sub", "jti")
_NOT_YET_VALID = frozenset({"The token is not yet valid", "The token was issued in the future"})  # joserfc's words


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


def oidc_actor_id(issuer: str, subject: str) -> str:
    return f"{OIDC_PREFIX}{issuer}#{subject}"


def group_map_problems(group_roles: dict[str, list[str]]) -> list[str]:
    """Why roles that ``group_roles`` grants cannot be held (as a local user's could not), one line each."""
    problems = []
    for group, roles in group_roles.items():
        for role in roles:
            if (problem := role_problem(role)) is not None:
                problems.append(f"api.oidc.group_roles[{group!r}]: {problem}")
    return problems


def roles_from_groups(
    groups: list[str], *, prefix: str | None = GROUP_PREFIX, group_roles: dict[str, list[str]] | None = None
) -> tuple[list[str], dict[str, list[str]]]:
    """Global roles and roles per program from the groups claim (see the module's docstring).

    A prefixed group that names no valid program or no role is ignored rather than read as a role of
    that odd name: it is meant for pausegate and it is wrong, so it grants nothing. A group neither
    prefixed nor in ``group_roles`` grants nothing either.
    """
    global_roles: set[str] = set()
    scoped: dict[str, set[str]] = {}
    mapped = group_roles or {}
    for group in groups:
        if group in mapped:
            named, per_program = split_roles(mapped[group])
            global_roles.update(named)
            for program, roles in per_program.items():
                scoped.setdefault(program, set()).update(roles)
        if prefix is None or not group.startswith(prefix):
            continue
        parts = group.removeprefix(prefix).split(":", 1)
        if len(parts) == 1:
            if parts[0]:
                global_roles.add(parts[0])
        elif parts[1] and _PROGRAM_ID.fullmatch(parts[0]):
            scoped.setdefault(parts[0], set()).add(parts[1])
    return sorted(global_roles), {p: sorted(r) for p, r in sorted(scoped.items())}


def verified_email(claims: dict[str, Any]) -> str | None:
    """The token's email when the provider says it verified it, lower-cased; None otherwise."""
    email = claims.get("email")
    verified = claims.get("email_verified")
    if verified is not True and verified != "true":  # some providers send the string
        return None
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    return email.strip().lower()


def _signing_keys(document: Any) -> dict[str, Key]:
    """The usable signing keys of a JWKS document, by key id."""
    keys: dict[str, Key] = {}
    entries = document.get("keys", []) if isinstance(document, dict) else []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in _KEY_TYPES:
            continue
        try:
            key = JWKRegistry.import_key(entry)
        except (JoseError, KeyError, TypeError, ValueError):
            continue  # keys of kinds we cannot use are skipped
        keys[str(entry.get("kid", ""))] = key
    return keys


def _token_registry(algorithms: list[str]) -> jws.JWSRegistry:
    """joserfc's rules for a token: these algorithms only; header parameters it does not know are ignored (as
    providers add their own), and the size bound is the token's (a long ``x5c`` header, an RSA-8192 signature)."""
    registry = jws.JWSRegistry(algorithms=algorithms, strict_check_header=False)
    registry.max_header_length = registry.max_payload_length = registry.max_signature_length = MAX_TOKEN_CHARS
    return registry


class OidcVerifier:
    """Verifies OIDC access or ID tokens against one issuer's keys."""

    def __init__(
        self,
        settings: OidcSettings,
        http: httpx.AsyncClient,
        *,
        jwks_ttl_seconds: float = JWKS_TTL_SECONDS,
        min_refresh_seconds: float = JWKS_MIN_REFRESH_SECONDS,
        fetch_timeout_seconds: float = JWKS_FETCH_TIMEOUT_SECONDS,
        backoff_initial_seconds: float = JWKS_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = JWKS_BACKOFF_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (monotonic seconds) times the TTL, the refetch window and the backoff; the
        fetch timeout itself is always real time."""
        self.settings = settings
        self.http = http
        self.algorithms = [a for a in settings.algorithms if a not in _FORBIDDEN_ALGORITHMS]
        if not self.algorithms:
            raise ValueError("OIDC needs at least one asymmetric signing algorithm")
        if fetch_timeout_seconds <= 0:
            raise ValueError("the JWKS fetch timeout must be positive")
        if problems := group_map_problems(settings.group_roles):
            raise ConfigError("\n".join(problems))
        self._ttl = jwks_ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._fetch_timeout = fetch_timeout_seconds
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = max(backoff_max_seconds, backoff_initial_seconds)
        self._clock = clock
        self._registry = _token_registry(self.algorithms)
        self._claims = JWTClaimsRegistry(
            leeway=settings.leeway_seconds, iss={"value": settings.issuer}, aud={"value": settings.audience}
        )
        self._keys: dict[str, Key] = {}
        self._fetched_at: float | None = None  # when the cached keys arrived
        self._started_at: float | None = None  # when the latest fetch (of any kind) started
        self._fetch_task: asyncio.Task[None] | None = None  # the one fetch in flight, shared
        self._failures = 0  # consecutive failed fetches
        self._failed_at: float | None = None
        self._last_error: str | None = None
        self._retry_at: float | None = None  # no fetch before this while backing off
        self._attempts = 0

    @property
    def fetch_attempts(self) -> int:
        """How many JWKS fetches this verifier has started."""
        return self._attempts

    @property
    def last_error(self) -> str | None:
        """Why the latest fetch failed, while the provider has not answered since."""
        return self._last_error

    async def aclose(self) -> None:
        """Stop the fetch in flight, if any (on shutdown)."""
        task = self._fetch_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_for_refresh(self) -> None:
        """Wait until the fetch in flight, if any, has finished (for readiness checks and tests)."""
        task = self._fetch_task
        if task is not None:
            await asyncio.wait({task})

    # The cache. Every decision below runs without an await between looking at the state and
    # changing it, so on one event loop no lock is needed and no request holds up another.

    def _backing_off(self, now: float) -> bool:
        return self._retry_at is not None and now < self._retry_at

    def _start_fetch(self) -> asyncio.Task[None]:
        """The fetch in flight, started now if there is none."""
        if self._fetch_task is None:
            self._attempts += 1
            self._started_at = self._clock()
            self._fetch_task = asyncio.create_task(self._fetch(), name="oidc-jwks-fetch")
        return self._fetch_task

    async def _await_fetch(self, task: asyncio.Task[None]) -> None:
        """Wait for a shared fetch; never cancels it (other requests share it), never raises.

        The fetch bounds itself by the fetch timeout; the waiter's own bound is only a backstop, a
        little longer so that the fetch normally gets to record its failure (and say why) first.
        """
        await asyncio.wait({task}, timeout=self._fetch_timeout * 1.1)

    async def _fetch(self) -> None:
        url = self.settings.jwks_url
        try:
            try:
                async with asyncio.timeout(self._fetch_timeout):
                    response = await self.http.get(url, timeout=self._fetch_timeout)
                    response.raise_for_status()
                    document = response.json()
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise TimeoutError(f"no answer within {self._fetch_timeout:g} s") from exc
            keys = _signing_keys(document)
            if not keys:
                raise ValueError("the key set holds no usable signing key")
        except Exception as exc:
            # Keep the keys we had: a provider that is down or answers garbage must not empty the cache.
            self._record_failure(url, exc)
        else:
            self._keys = keys
            self._fetched_at = self._clock()
            self._failures = 0
            self._failed_at = self._retry_at = self._last_error = None
            log.info("oidc_jwks_fetched", url=url, keys=len(keys))
        finally:
            self._fetch_task = None

    def _record_failure(self, url: str, exc: Exception) -> None:
        now = self._clock()
        self._failures += 1
        backoff = min(self._backoff_initial * 2 ** min(self._failures - 1, 32), self._backoff_max)
        self._failed_at = now
        self._retry_at = now + backoff
        self._last_error = str(exc) or type(exc).__name__
        log.warning(
            "oidc_jwks_unavailable",
            url=url,
            error=self._last_error,
            failures=self._failures,
            retry_in_seconds=backoff,
            cached_keys=len(self._keys),
        )

    def _revalidate_if_stale(self, now: float) -> None:
        """Start a background fetch when the cached keys are past their TTL; never waits for it."""
        stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
        if stale and self._fetch_task is None and not self._backing_off(now):
            self._start_fetch()

    def _lookup(self, kid: str) -> Key | None:
        key = self._keys.get(kid)
        if key is None and not kid and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        return key

    async def _key_for(self, kid: str) -> Key:
        now = self._clock()
        if not self._keys:
            # First start (or every fetch so far failed): the only case in which requests wait.
            if self._backing_off(now):
                raise AuthenticationError(_KEYS_UNAVAILABLE)
            await self._await_fetch(self._start_fetch())
            if not self._keys:
                raise AuthenticationError(_KEYS_UNAVAILABLE)
            now = self._clock()
        key = self._lookup(kid)
        if key is not None:
            self._revalidate_if_stale(now)
            return key
        # An unknown key id: perhaps the keys rotated, perhaps an outsider's garbage.
        if self._backing_off(now):
            raise AuthenticationError(f"{_UNKNOWN_KEY}; {_KEYS_UNAVAILABLE} to look for new ones")
        if self._started_at is not None and now - self._started_at < self._min_refresh:
            self._revalidate_if_stale(now)
            raise AuthenticationError(_UNKNOWN_KEY)
        await self._await_fetch(self._start_fetch())
        key = self._lookup(kid)
        if key is None:
            raise AuthenticationError(_UNKNOWN_KEY)
        return key

    async def authenticate(self, token: str) -> Actor:
        actor, _ = await self.verify(token)
        return actor

    async def verify(self, token: str) -> tuple[Actor, dict[str, Any]]:
        """Who the token proves, and all its claims (once signature, issuer, audience and time are checked)."""
        s = self.settings
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationError("malformed token")
        try:
            header = jws.extract_compact(token.encode(), registry=self._registry).headers()
            if not isinstance(header, dict):
                raise TypeError("the header is not a JSON object")
            self._registry.check_header(header)  # e.g. a kid that is not a string, a crit we do not understand
        except MissingAlgorithmError:
            header = {}
        except (JoseError, TypeError, ValueError) as exc:
            raise AuthenticationError("malformed token") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthenticationError(f"token algorithm {alg!r} is not accepted")
        key = await self._key_for(str(header.get("kid", "")))
        try:
            claims = decode_jwt(token, key, registry=self._registry).claims
            required = ("exp", "iss", "aud", s.actor_claim)
            missing = next((c for c in required if claims.get(c) is None or (c == "aud" and not claims[c])), None)
            if missing is not None:
                raise AuthenticationError(f"token lacks the {missing!r} claim")
            self._claims.validate({c: claims[c] for c in _TIME_AND_NAME_CLAIMS if c in claims})
        except BadSignatureError as exc:
            raise AuthenticationError("token signature does not verify") from exc
        except ExpiredTokenError as exc:
            raise AuthenticationError("token expired") from exc
        except ClaimError as exc:
            if exc.claim == "aud":
                raise AuthenticationError("token is for another audience") from exc
            if exc.claim == "iss":
                raise AuthenticationError("token from another issuer") from exc
            if exc.claim in ("nbf", "iat") and exc.description in _NOT_YET_VALID:
                raise AuthenticationError("token not valid yet") from exc
            raise AuthenticationError("invalid token") from exc
        except JoseError as exc:
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
        actor_id = oidc_actor_id(s.issuer, subject)
        if len(actor_id) > MAX_ACTOR_ID:
            raise AuthenticationError(f"issuer and {s.actor_claim!r} together are too long for an identity")
        roles, program_roles = roles_from_groups(groups, prefix=s.group_prefix, group_roles=s.group_roles)
        return Actor(id=actor_id, roles=roles, program_roles=program_roles, email=verified_email(claims)), claims
