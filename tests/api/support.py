"""An API world on top of the pause harness: runbooks dir, users with tokens, OIDC keys, a live server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from joserfc.jwk import RSAKey
from joserfc.jwt import encode as encode_jwt

from pausegate.app import create_app, serve
from pausegate.auth import CombinedAuthenticator, LocalTokens, OidcVerifier, UserDirectory, UsersFileCheck
from pausegate.auth.oidc import oidc_actor_id
from pausegate.config import ApiSettings, OidcSettings, Settings
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.people import Actor
from tests.support.harness import (
    ANALYST,
    CISO,
    COMMANDER,
    CPO,
    CTO,
    DATA_ENGINEER,
    LEGAL,
    PRIVACY,
    SECURITY_LEAD,
    Harness,
)

ADMIN = Actor(id="ada", roles=["admin"])
PEOPLE = [COMMANDER, ANALYST, SECURITY_LEAD, DATA_ENGINEER, PRIVACY, LEGAL, CISO, CPO, CTO, ADMIN]
ISSUER = "https://idp.example.test/realms/pausegate"


def local(name: str) -> str:
    """The actor id the API gives the local user ``name``."""
    return f"local:{name}"


def oidc(sub: str) -> str:
    """The actor id the API gives the test issuer's subject ``sub``."""
    return oidc_actor_id(ISSUER, sub)

AUDIENCE = "pausegate-api"
JWKS_URL = "https://idp.example.test/realms/pausegate/jwks"
GROUP_ROLES = {role: [role] for role in (
    "incident-commander", "security-analyst", "security-lead", "data-engineer", "privacy-officer", "legal-counsel",
    "ciso", "cpo", "cto", "ops-commander", "ops-lead", "admin",
)}
"""The test provider's groups that grant the role of their name (``group_roles``): any other group, such as
``staff`` or ``employees``, grants nothing."""

# Who completes which item of the worked example's checklist, in dependency order, with which evidence.
REVIEW = [
    ("access-review", "ann", "access-report"),
    ("root-cause", "sam", "root-cause-analysis"),
    ("narrowed-access", "dave", "access-design"),
    ("data-minimisation", "pia", "data-minimisation-decision"),
    ("employee-notice", "pia", "employee-notice"),
    ("legal-privacy-review", "lee", "legal-opinion"),
]

NARROWED_PLAN: dict[str, Any] = {
    "agents": {"mode": "all"},
    "grants": [
        {
            "dataset": "telemetry",
            "role": "telemetry_analysts",
            "table": "keystrokes",
            "privileges": ["SELECT"],
            "columns": ["id", "agent_id", "employee", "captured_at", "key_code"],
        },
        {"dataset": "telemetry", "role": "telemetry_analysts", "table": "mouse_events", "privileges": ["SELECT"]},
        {"dataset": "telemetry", "role": "telemetry_ingest", "table": "keystrokes", "privileges": ["INSERT"]},
        {"dataset": "telemetry", "role": "telemetry_ingest", "table": "mouse_events", "privileges": ["INSERT"]},
    ],
    "conditions": ["typed_content no longer collected", "quarterly access review"],
    "summary": "Analysts read without typed content; the writer writes; nobody else.",
}


def evidence_for(item: str, name: str) -> dict[str, Any]:
    return {"name": name, "uri": f"https://docs.example.com/{item}", "sha256": "ab" * 32}


class OidcIssuer:
    """A test identity provider: an RSA key, its JWKS, and tokens minted on demand."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAKey.import_key(self.key.public_key()).as_dict()
        self.jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        self.fetches = 0

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            assert str(request.url) == JWKS_URL
            self.fetches += 1
            return httpx.Response(200, json=self.jwks)

        return httpx.MockTransport(handler)

    def token(
        self,
        sub: str,
        groups: list[str] | None,
        *,
        aud: str = AUDIENCE,
        iss: str = ISSUER,
        expires_in: float = 300,
        key: Any = None,
        kid: str = "k1",
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": sub, "iss": iss, "aud": aud, "iat": now, "exp": now + int(expires_in)}
        if groups is not None:
            claims["groups"] = groups
        claims.update(extra or {})
        return encode_jwt({"alg": "RS256", "kid": kid}, claims, RSAKey.import_key(key or self.key))

    def settings(self) -> OidcSettings:
        return OidcSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_url=JWKS_URL, groups_claim="groups", leeway_seconds=5,
            group_roles=GROUP_ROLES,
        )


@dataclass
class ApiWorld:
    """A running API against a harness, with a token per person."""

    harness: Harness
    url: str
    settings: Settings
    tokens: dict[str, str]
    issuer: OidcIssuer
    app: FastAPI
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    @property
    def program(self) -> str:
        return self.harness.program

    def client(self, who: str | None = None, *, token: str | None = None) -> httpx.AsyncClient:
        """An HTTP client authenticated as ``who`` (a user name), with ``token``, or with nothing."""
        key = who or f"token:{token}"
        if key not in self.clients:
            headers = {}
            if who is not None:
                headers["Authorization"] = f"Bearer {self.tokens[who]}"
            elif token is not None:
                headers["Authorization"] = f"Bearer {token}"
            self.clients[key] = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60.0)
        return self.clients[key]

    async def view(self, who: str = "carol") -> dict[str, Any]:
        response = await self.client(who).get(f"/v1/pauses/{self.program}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 60.0, what: str = "condition"
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        view = await self.view()
        while not predicate(view):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; state {view['state']}")
            await asyncio.sleep(0.1)
            view = await self.view()
        return view

    async def wait_for_state(self, *states: str, timeout: float = 60.0) -> dict[str, Any]:
        return await self.wait_for(lambda v: v["state"] in states, timeout=timeout, what=f"state in {states}")

    async def complete_review(self) -> None:
        for item, who, name in REVIEW:
            r = await self.client(who).post(
                f"/v1/pauses/{self.program}/checklist/{item}", json={"evidence": [evidence_for(item, name)]}
            )
            assert r.status_code == 200, r.text


def write_runbook(harness: Harness, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{harness.program}.yaml"
    path.write_text(yaml.safe_dump(harness.runbook.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return path


def api_settings(harness: Harness, tmp_path: Path, *, oidc: OidcSettings | None = None) -> Settings:
    """The harness's settings with an ``api`` section: its runbook under its program id, a users file."""
    write_runbook(harness, tmp_path / "runbooks")
    api = ApiSettings(
        runbooks_dir=tmp_path / "runbooks",
        users_file=tmp_path / "users.json",
        refusal_log=tmp_path / "api-refusals.jsonl",
        oidc=oidc,
    )
    return harness.settings.model_copy(update={"api": api})


@asynccontextmanager
async def api_world(
    harness: Harness,
    tmp_path: Path,
    *,
    extra_people: list[Actor] | None = None,
    oidc_settings: OidcSettings | None = None,
    **app_options: Any,
) -> AsyncIterator[ApiWorld]:
    """``oidc_settings``: trust a real identity provider (its JWKS fetched over the network) instead of
    the in-memory ``OidcIssuer``."""
    issuer = OidcIssuer()
    oidc_settings = oidc_settings or issuer.settings()
    settings = api_settings(harness, tmp_path, oidc=oidc_settings)
    # Users are added as the stack adds its first admin: through the users' change log, so the log
    # starts out describing the file and a test sees only the changes it makes.
    users = UserDirectory(settings.api.users_file, open_evidence_store(settings.evidence).signing_key)
    people = {p.id: p for p in [*PEOPLE, *(extra_people or [])]}  # an extra person may be one of PEOPLE
    tokens = {p.id: users.issue(None, p.id, list(p.roles))[1] for p in people.values()}
    transport = issuer.transport() if oidc_settings.jwks_url == JWKS_URL else None
    async with httpx.AsyncClient(transport=transport) as jwks_http:
        # As build_authenticator does: every reload of a changed users file is checked against the log.
        local_tokens = LocalTokens(settings.api.users_file, on_reload=UsersFileCheck(settings))
        authenticator = CombinedAuthenticator(local_tokens, OidcVerifier(oidc_settings, jwks_http))
        app = create_app(settings, harness.client, authenticator=authenticator, tuning=harness.tuning, **app_options)
        async with serve(settings, harness.client, host="127.0.0.1", port=0, app=app) as url:
            world = ApiWorld(harness=harness, url=url, settings=settings, tokens=tokens, issuer=issuer, app=app)
            try:
                yield world
            finally:
                for c in world.clients.values():
                    await c.aclose()
