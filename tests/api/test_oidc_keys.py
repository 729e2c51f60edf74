"""OIDC keys degrade gracefully when the identity provider is slow, down, or fed garbage key ids.

The JWKS endpoint is a real HTTP server on loopback (``JwksServer``) that serves, fails or hangs, and
counts the requests it receives; one case also uses an ``httpx.MockTransport`` that hangs, because a
mock transport ignores httpx's own timeouts and so shows that the verifier bounds the fetch itself.
Time that the verifier reasons about (TTL, refetch window, backoff) comes from an injected clock; only
the fetch timeout is real time, kept at one second so these tests stay fast.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from pausegate.auth import AuthenticationError, OidcVerifier
from pausegate.models.people import Actor
from tests.api.support import OidcIssuer, oidc
from tests.support.fault_report import record_result

# Whether a request waited for a fetch is read from the order of events (was the fetch's failure
# recorded when the request was answered?), not from a clock: the timeout only needs to be long enough
# that ten answers from the cache come before it on a loaded machine, and it is waited out three times.
FETCH_TIMEOUT = 2.0
TTL = 300.0
MIN_REFRESH = 30.0
UNAVAILABLE = "the identity provider's keys are unavailable"
UNKNOWN = "token signed with an unknown key"

Mode = Literal["serve", "fail", "hang"]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JwksServer:
    """The issuer's JWKS over real HTTP/1.1 on 127.0.0.1: serves it, answers 503, or never answers."""

    def __init__(self, issuer: OidcIssuer) -> None:
        self.issuer = issuer
        self.mode: Mode = "serve"
        self.requests = 0
        self._seen = asyncio.Condition()
        self._release = asyncio.Event()  # hanging requests wait for this; set only on close
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}/realms/pausegate/jwks"

    async def close(self) -> None:
        self._release.set()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for_requests(self, n: int, *, timeout: float = 5.0) -> None:
        """Until the server has received ``n`` requests (bounded, so a missing request fails the test)."""
        async with self._seen:
            await asyncio.wait_for(self._seen.wait_for(lambda: self.requests >= n), timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:  # keep-alive: httpx reuses the connection
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"GET /realms/pausegate/jwks "), head
                mode = self.mode
                async with self._seen:
                    self.requests += 1
                    self._seen.notify_all()
                if mode == "hang":
                    await self._release.wait()
                    return
                if mode == "fail":
                    status, body = b"503 Service Unavailable", b'{"error": "down for maintenance"}'
                else:
                    status, body = b"200 OK", json.dumps(self.issuer.jwks).encode()
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client went away
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
def issuer() -> OidcIssuer:
    return OidcIssuer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(issuer: OidcIssuer) -> AsyncIterator[JwksServer]:
    jwks = JwksServer(issuer)
    await jwks.start()
    try:
        yield jwks
    finally:
        await jwks.close()


@asynccontextmanager
async def verifier_for(
    issuer: OidcIssuer, url: str, clock: FakeClock, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> AsyncIterator[OidcVerifier]:
    settings = issuer.settings().model_copy(update={"jwks_url": url})
    # trust_env=False: a proxy from the environment must not stand between us and loopback.
    async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
        verifier = OidcVerifier(
            settings,
            http,
            jwks_ttl_seconds=TTL,
            min_refresh_seconds=MIN_REFRESH,
            fetch_timeout_seconds=FETCH_TIMEOUT,
            clock=clock,
            **options,
        )
        try:
            yield verifier
        finally:
            await verifier.aclose()


async def timed(calls: list[Awaitable[Actor]]) -> list[Actor | BaseException]:
    """All calls at once: their outcomes."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


def refusals(outcomes: list[Actor | BaseException]) -> list[str]:
    """The refusal reasons, failing the test on anything that is not an AuthenticationError."""
    for outcome in outcomes:
        assert isinstance(outcome, AuthenticationError), outcome
    return [o.reason for o in outcomes if isinstance(o, AuthenticationError)]


def warnings_logged(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


async def test_stale_keys_are_served_at_once_while_one_background_fetch_hangs(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock
) -> None:
    async with verifier_for(issuer, server.url, clock) as verifier:
        assert (await verifier.authenticate(issuer.token("first", ["staff"]))).id == oidc("first")
        assert (server.requests, verifier.fetch_attempts) == (1, 1)

        clock.advance(TTL + 1)
        server.mode = "hang"
        outcomes = await timed([verifier.authenticate(issuer.token(f"u{i}", ["staff"])) for i in range(10)])
        assert [o.id if isinstance(o, Actor) else o for o in outcomes] == [oidc(f"u{i}") for i in range(10)]
        assert verifier.last_error is None, "requests waited for the fetch to give up"
        assert verifier.fetch_attempts == 2  # exactly one background fetch for ten stale requests
        await server.wait_for_requests(2)

        # While that fetch hangs, more stale requests neither wait nor start another fetch.
        outcomes = await timed([verifier.authenticate(issuer.token(f"v{i}", ["staff"])) for i in range(10)])
        assert all(isinstance(o, Actor) for o in outcomes), outcomes
        assert verifier.last_error is None, "requests waited for the fetch to give up"
        assert (server.requests, verifier.fetch_attempts) == (2, 2)

        # The timeout ends the hanging fetch; the failure is recorded and the cached keys keep serving.
        with capture_logs() as logs:
            await asyncio.wait_for(verifier.wait_for_refresh(), 2 * FETCH_TIMEOUT)
        assert verifier.last_error is not None and "no answer within" in verifier.last_error
        assert len(warnings_logged(logs, "oidc_jwks_unavailable")) == 1
        assert (await verifier.authenticate(issuer.token("after", ["staff"]))).id == oidc("after")
        assert (server.requests, verifier.fetch_attempts) == (2, 2)  # backing off: no new fetch
        record_result("identity provider's key endpoint hangs", "cache expired, 10 concurrent valid tokens",
                      injected=1, outcome="all answered from the cached keys within one fetch timeout; one "
                      "background fetch; the failure recorded once, then backoff")


class HangingTransport(httpx.AsyncBaseTransport):
    """A provider that accepts the request and never answers, and ignores httpx's timeouts."""

    def __init__(self) -> None:
        self.requests = 0
        self._never = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await self._never.wait()
        raise AssertionError("unreachable")


@pytest.mark.parametrize("provider", ["loopback", "mock-transport"])
async def test_at_first_start_requests_share_one_bounded_fetch_of_a_hanging_provider(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock, provider: str
) -> None:
    hanging = HangingTransport() if provider == "mock-transport" else None
    server.mode = "hang"

    def requests() -> int:
        return hanging.requests if hanging is not None else server.requests

    async with verifier_for(issuer, server.url, clock, transport=hanging) as verifier:
        with capture_logs() as logs:
            outcomes = await timed(
                [verifier.authenticate(issuer.token(f"u{i}", ["staff"])) for i in range(10)]
            )
        assert refusals(outcomes) == [UNAVAILABLE] * 10
        # answered once the one fetch had given up: they waited for it, and for nothing longer
        assert verifier.last_error is not None and "no answer within" in verifier.last_error
        assert (requests(), verifier.fetch_attempts) == (1, 1)
        unavailable = warnings_logged(logs, "oidc_jwks_unavailable")
        assert len(unavailable) == 1 and "no answer within" in unavailable[0]["error"]


async def test_after_a_failure_requests_back_off_without_calling_the_provider(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock
) -> None:
    server.mode = "fail"
    async with verifier_for(issuer, server.url, clock) as verifier:
        with capture_logs() as logs:
            with pytest.raises(AuthenticationError, match=UNAVAILABLE):
                await verifier.authenticate(issuer.token("u", ["staff"]))
            assert server.requests == 1
            assert verifier.last_error is not None and "503" in verifier.last_error

            clock.advance(4.9)  # within the first backoff (5 s)
            outcomes = await timed(
                [verifier.authenticate(issuer.token(f"u{i}", ["staff"])) for i in range(10)]
            )
            assert refusals(outcomes) == [UNAVAILABLE] * 10
            assert (server.requests, verifier.fetch_attempts) == (1, 1)

            clock.advance(0.2)  # past it: one more try, which fails and doubles the backoff to 10 s
            with pytest.raises(AuthenticationError, match=UNAVAILABLE):
                await verifier.authenticate(issuer.token("u", ["staff"]))
            assert server.requests == 2

            clock.advance(9.9)
            with pytest.raises(AuthenticationError, match=UNAVAILABLE):
                await verifier.authenticate(issuer.token("u", ["staff"]))
            assert server.requests == 2

            server.mode = "serve"
            clock.advance(0.2)
            assert (await verifier.authenticate(issuer.token("back", ["staff"]))).id == oidc("back")
            assert (server.requests, verifier.fetch_attempts) == (3, 3)
            assert verifier.last_error is None

        # Logged once per failed fetch (two), not once per refused request (thirteen).
        unavailable = warnings_logged(logs, "oidc_jwks_unavailable")
        assert [entry["retry_in_seconds"] for entry in unavailable] == [5.0, 10.0]
        assert len(warnings_logged(logs, "oidc_jwks_fetched")) == 1

        # A success resets the backoff: the next failure waits 5 s again.
        clock.advance(TTL + 1)
        server.mode = "fail"
        await verifier.authenticate(issuer.token("stale", ["staff"]))
        await verifier.wait_for_refresh()
        assert server.requests == 4
        clock.advance(5.1)
        await verifier.authenticate(issuer.token("stale", ["staff"]))
        assert verifier.fetch_attempts == 5


async def test_cached_keys_keep_serving_through_an_outage_and_a_garbage_key_set(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock
) -> None:
    async with verifier_for(issuer, server.url, clock) as verifier:
        await verifier.authenticate(issuer.token("u", ["staff"]))
        clock.advance(TTL + 1)
        server.mode = "fail"
        assert (await verifier.authenticate(issuer.token("stale", ["staff"]))).id == oidc("stale")
        await verifier.wait_for_refresh()
        assert server.requests == 2 and verifier.last_error is not None

        clock.advance(4)  # backing off: known keys still verify, unknown ones are refused at once
        assert (await verifier.authenticate(issuer.token("during", ["staff"]))).id == oidc("during")
        with pytest.raises(AuthenticationError, match=UNAVAILABLE):
            await verifier.authenticate(issuer.token("u", ["staff"], kid="k-new"))
        assert (server.requests, verifier.fetch_attempts) == (2, 2)

        # A provider that answers with no usable signing key must not empty the cache.
        clock.advance(2)
        server.mode = "serve"
        good_jwks, issuer.jwks = issuer.jwks, {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig"}]}
        await verifier.authenticate(issuer.token("u", ["staff"]))
        await verifier.wait_for_refresh()
        assert server.requests == 3
        assert verifier.last_error is not None and "no usable signing key" in verifier.last_error
        assert (await verifier.authenticate(issuer.token("kept", ["staff"]))).id == oidc("kept")

        clock.advance(10.1)  # second failure: backoff 10 s
        issuer.jwks = good_jwks
        await verifier.authenticate(issuer.token("u", ["staff"]))
        await verifier.wait_for_refresh()
        assert server.requests == 4 and verifier.last_error is None


async def test_unknown_key_ids_cause_at_most_one_refetch_per_window(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock
) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def garbage(n: int) -> list[str]:
        return [issuer.token("mallory", ["admin"], key=attacker, kid=secrets.token_hex(8)) for _ in range(n)]

    async with verifier_for(issuer, server.url, clock) as verifier:
        await verifier.authenticate(issuer.token("u", ["staff"]))
        assert server.requests == 1

        waves = [
            (0.0, 1),  # right after the first fetch: inside its window, no refetch
            (MIN_REFRESH, 2),  # window over: one refetch for the whole wave
            (MIN_REFRESH - 0.1, 2),  # inside the new window
            (0.1, 3),  # over again
        ]
        for advance, expected_requests in waves:
            clock.advance(advance)
            outcomes = await timed([verifier.authenticate(token) for token in garbage(100)])
            assert refusals(outcomes) == [UNKNOWN] * 100
            assert (server.requests, verifier.fetch_attempts) == (expected_requests, expected_requests)

        assert (await verifier.authenticate(issuer.token("still", ["staff"]))).id == oidc("still")


async def test_an_unknown_key_id_waits_for_its_refetch_at_most_the_fetch_timeout(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock
) -> None:
    async with verifier_for(issuer, server.url, clock) as verifier:
        await verifier.authenticate(issuer.token("u", ["staff"]))
        clock.advance(MIN_REFRESH)
        server.mode = "hang"

        async def after_the_refetch_gave_up(token: str) -> bool:
            with pytest.raises(AuthenticationError, match=UNKNOWN):
                await verifier.authenticate(token)
            return verifier.last_error is not None

        tokens = [issuer.token("u", ["staff"], kid=secrets.token_hex(8)) for _ in range(20)]
        waited = await asyncio.gather(*(after_the_refetch_gave_up(t) for t in tokens))
        # the one that started the refetch waited for it to give up; the others were refused before
        assert waited == [True] + [False] * 19, "other unknown key ids waited for the refetch"
        assert verifier.last_error is not None and "no answer within" in verifier.last_error
        assert (server.requests, verifier.fetch_attempts) == (2, 2)
        assert (await verifier.authenticate(issuer.token("known", ["staff"]))).id == oidc("known")


async def test_a_rotated_key_works_on_first_sight_and_is_then_cached(
    issuer: OidcIssuer, server: JwksServer, clock: FakeClock
) -> None:
    async with verifier_for(issuer, server.url, clock) as verifier:
        await verifier.authenticate(issuer.token("u", ["staff"]))
        rotated = OidcIssuer()
        issuer.jwks = {"keys": [*issuer.jwks["keys"], {**rotated.jwks["keys"][0], "kid": "k2"}]}

        clock.advance(MIN_REFRESH + 30)  # well before the TTL runs out
        actor = await verifier.authenticate(rotated.token("tom", ["cto"], kid="k2"))
        assert (actor.id, actor.roles) == (oidc("tom"), ["cto"])
        assert server.requests == 2

        again = await verifier.authenticate(rotated.token("ann", ["staff"], kid="k2"))
        assert again.id == oidc("ann") and server.requests == 2
        assert (await verifier.authenticate(issuer.token("old", ["staff"]))).id == oidc("old")
        assert server.requests == 2


async def test_a_key_set_that_is_not_json_is_a_failure_with_a_reason(issuer: OidcIssuer, clock: FakeClock) -> None:
    answered = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        answered += 1
        return httpx.Response(200, text="<html>sign in</html>")

    async with verifier_for(issuer, "http://idp.test/jwks", clock, transport=httpx.MockTransport(handler)) as verifier:
        with pytest.raises(AuthenticationError, match=UNAVAILABLE):
            await verifier.authenticate(issuer.token("u", ["staff"]))
        assert answered == 1 and verifier.last_error is not None


@pytest.mark.parametrize(
    ("claims", "outcome"),
    [
        ({"nbf": 100}, "token not valid yet"),
        ({"iat": 100}, "token not valid yet"),
        ({"nbf": 3, "iat": 3}, None),  # within the leeway (5 s)
        ({"exp": -3}, None),
        ({"exp": -6}, "token expired"),
        ({"nbf": "soon"}, "invalid token"),
        ({"exp": -100, "aud": "another-api"}, "token expired"),  # time first, whatever order the token lists them in
        ({"aud": ["another-api", "pausegate-api"]}, None),
        ({"aud": ""}, "token lacks the 'aud' claim"),
        ({"iss": 5}, "token from another issuer"),
        ({"sub": 5}, "invalid token"),
    ],
)
async def test_time_and_name_claims_are_checked_with_the_leeway(
    issuer: OidcIssuer, claims: dict[str, Any], outcome: str | None
) -> None:
    now = int(time.time())
    extra = {k: now + v if k in ("nbf", "iat", "exp") and isinstance(v, int) else v for k, v in claims.items()}
    token = issuer.token("u", ["staff"], extra=extra)
    async with httpx.AsyncClient(transport=issuer.transport()) as http:
        verifier = OidcVerifier(issuer.settings(), http)
        if outcome is None:
            assert (await verifier.authenticate(token)).id == oidc("u")
        else:
            with pytest.raises(AuthenticationError) as refused:
                await verifier.authenticate(token)
            assert refused.value.reason == outcome


async def test_verify_returns_the_claims_the_console_reads_the_nonce_from(issuer: OidcIssuer) -> None:
    async with httpx.AsyncClient(transport=issuer.transport()) as http:
        actor, claims = await OidcVerifier(issuer.settings(), http).verify(
            issuer.token("u", ["staff"], extra={"nonce": "n-1"})
        )
    assert actor.id == oidc("u") and claims["nonce"] == "n-1"


@pytest.mark.parametrize(
    ("token", "outcome"),
    [
        ("x" * 20_000, "malformed token"),  # bounded before any parsing (the console hands ID tokens straight in)
        ("a.b.c", "malformed token"),
        ("eyJhbGciOiJub25lIn0.e30.", "token algorithm 'none' is not accepted"),
        ("eyJraWQiOiJrMSJ9.e30.AAAA", "token algorithm None is not accepted"),
    ],
)
async def test_malformed_and_unsigned_tokens_are_refused_before_any_key_is_fetched(
    issuer: OidcIssuer, token: str, outcome: str
) -> None:
    async with httpx.AsyncClient(transport=issuer.transport()) as http:
        with pytest.raises(AuthenticationError) as refused:
            await OidcVerifier(issuer.settings(), http).authenticate(token)
    assert refused.value.reason == outcome and issuer.fetches == 0
