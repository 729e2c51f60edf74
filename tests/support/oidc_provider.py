"""A small OpenID provider for tests, built on Authlib's server side (a one-button consent page for its one user).

``AuthorizationServer`` (RFC 6749) with the authorization code grant, the PKCE extension
(``rfc7636.CodeChallenge``, required, S256 only) and OpenID Connect's ``OpenIDCode`` extension (ID
tokens, nonce required), served by a Starlette app on a loopback port: ``/authorize`` (a page with one
button, "Allow", that sends the browser back with a code for the configured user), ``/token``,
``/jwks``. ID tokens are RS256, signed with a key published at ``/jwks``.

What a test changes between sign-ins is plain attributes: ``user`` (sub, groups, email),
``issuer_claim`` / ``audience`` (to mint a token another deployment would accept, not this one).
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pausegate.serving import serve_app

KID = "provider-k1"


@dataclass
class User:
    """The person the provider signs in (it asks nothing: whoever reaches /authorize is this user)."""

    sub: str
    groups: list[str]
    email: str | None = None
    email_verified: bool = True


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """One registered public client (PKCE, no secret): the console."""

    client_id: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "email", "profile"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # a public client has none

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


class _Request(OAuth2Request):  # type: ignore[misc]
    """An Authlib request from what Starlette read (Authlib's server side is synchronous)."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], data: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = BasicOAuth2Payload(data)
        self._data = data

    @property
    def args(self) -> dict[str, str]:
        return self._data if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self._data if self.method == "POST" else {}


@dataclass
class OidcProvider:
    """The provider's state: its user, its client, its key, and what its tokens claim."""

    client_id: str
    audience: str
    user: User
    redirect_uri: str = ""
    url: str = ""
    issuer_claim: str | None = None
    """``iss`` of the tokens it mints; default its own URL (what the API is configured to trust)."""
    token_seconds: int = 300
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                    key_size=2048))
    codes: dict[str, Code] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    """ID tokens minted, in order (a test can check what the console was given)."""
    answers: list[str] = field(default_factory=list)
    """Where ``/authorize`` sent the browser back, as the provider meant it (before any tampering)."""
    tamper_state: bool = False
    """Send the browser back with a ``state`` other than the one it came with (an answer altered on the way)."""

    @property
    def jwk(self) -> RSAKey:
        return RSAKey.import_key(self.key, {"kid": KID, "use": "sig", "alg": "RS256"})

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk.as_dict(private=False)]}

    @property
    def issuer(self) -> str:
        return self.issuer_claim or self.url


def _server(provider: OidcProvider) -> AuthorizationServer:
    class Server(AuthorizationServer):  # type: ignore[misc]
        def query_client(self, client_id: str) -> Client | None:
            if client_id != provider.client_id:
                return None
            return Client(client_id=provider.client_id, redirect_uri=provider.redirect_uri)

        def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
            pass  # access tokens are not used: the console signs in with the ID token

        def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
            pass

        def create_oauth2_request(self, request: Any) -> OAuth2Request:
            assert isinstance(request, OAuth2Request)
            return request

        def handle_response(self, status: int, body: Any, headers: Any) -> Response:
            if isinstance(body, dict):
                return JSONResponse(body, status_code=status, headers=dict(headers))
            return Response(body or "", status_code=status, headers=dict(headers))

    class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

        def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code=code, client_id=request.client.get_client_id(), redirect_uri=data.get("redirect_uri", ""),
                scope=request.payload.scope or "", user=request.user, nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"), code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = provider.codes.get(code)
            return found if found is not None and found.client_id == client.get_client_id() else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)  # a code is good once

        def authenticate_user(self, authorization_code: Code) -> User:
            return authorization_code.user

    class IdToken(OpenIDCode):  # type: ignore[misc]
        def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
            return any(c.nonce == nonce for c in provider.codes.values())

        def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
            id_token: str = super().encode_id_token(token, request)
            provider.issued.append(id_token)
            return id_token

        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return provider.jwk

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": KID}

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            return {"iss": provider.issuer, "aud": [provider.audience],
                    "exp": int(time.time()) + provider.token_seconds}

        def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
            info: dict[str, Any] = {"sub": user.sub, "groups": list(user.groups)}
            if user.email is not None:
                info.update(email=user.email, email_verified=user.email_verified)
            return info

    server = Server(scopes_supported=["openid", "email", "profile"])
    server.register_token_generator(
        "default", BearerTokenGenerator(lambda **_: secrets.token_urlsafe(32))  # type: ignore[no-untyped-call]
    )
    server.register_grant(CodeGrant, [CodeChallenge(required=True), IdToken(require_nonce=True)])
    return server


def provider_app(provider: OidcProvider) -> Starlette:
    server = _server(provider)

    async def authorize(request: Request) -> Response:
        req = _Request("GET", str(request.url), dict(request.headers), dict(request.query_params))
        try:
            grant = server.get_consent_grant(request=req, end_user=provider.user)
        except OAuth2Error as error:
            refusal: Response = server.handle_error_response(req, error)
            return refusal
        if request.method == "GET":
            # The one-button consent page: the way back to the console then starts on this site, as after a real
            # provider's login form, so the browser treats it as the cross-site navigation it is in production.
            action = html.escape("/authorize?" + request.url.query)
            return HTMLResponse(f'<!doctype html><title>Test provider</title><form method="post" action="{action}">'
                                f'<p>Sign in to pausegate as {html.escape(provider.user.sub)}?</p>'
                                '<button type="submit">Allow</button></form>')
        # Consent given: the configured user approves what the registered client asked for.
        response: Response = server.create_authorization_response(request=req, grant_user=provider.user, grant=grant)
        location = response.headers.get("location")
        if location is not None:
            provider.answers.append(location)
            if provider.tamper_state:
                parts = urlsplit(location)
                query = dict(parse_qsl(parts.query))
                query["state"] = query["state"][::-1]
                response.headers["location"] = urlunsplit(parts._replace(query=urlencode(query)))
        return response

    async def token(request: Request) -> Response:
        body = (await request.body()).decode()
        req = _Request("POST", str(request.url), dict(request.headers), dict(parse_qsl(body)))
        response: Response = server.create_token_response(req)
        return response

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.jwks)

    return Starlette(routes=[Route("/authorize", authorize, methods=["GET", "POST"]),
                             Route("/token", token, methods=["POST"]), Route("/jwks", jwks)])


@asynccontextmanager
async def serve_provider(provider: OidcProvider, *, host: str = "localhost") -> AsyncIterator[OidcProvider]:
    """Serve ``provider`` on a free loopback port until the block exits; ``provider.url`` is set.

    ``localhost`` (not 127.0.0.1) by default, so that in a browser the provider is *another site* than a
    console served on 127.0.0.1: the redirect back is cross-site, as with a real provider."""
    async with serve_app(provider_app(provider), host="127.0.0.1", port=0) as (url, _):
        port = url.rsplit(":", 1)[1].rstrip("/")
        provider.url = f"http://{host}:{port}"
        yield provider
