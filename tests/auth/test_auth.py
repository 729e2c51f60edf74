"""Local tokens and OIDC JWTs: who is let in, and with which roles."""

from __future__ import annotations

import json
import stat
import warnings
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from pausegate.auth import AuthenticationError, CombinedAuthenticator, LocalTokens, OidcVerifier, ensure_first_admin
from pausegate.auth.local import UserExists
from tests.api.support import OidcIssuer, oidc


class TestLocalTokens:
    def test_a_token_is_returned_once_and_only_its_hash_is_stored_owner_only(self, tmp_path: Path) -> None:
        users = tmp_path / "users.json"
        token = LocalTokens(users).add("carol", ["incident-commander"])
        text = users.read_text()
        assert token not in text
        assert json.loads(text)["users"][0]["name"] == "carol"
        assert stat.S_IMODE(users.stat().st_mode) == 0o600
        actor = LocalTokens(users).verify(token)
        assert (actor.id, actor.roles) == ("local:carol", ["incident-commander"])

    def test_unknown_and_replaced_tokens_prove_nobody(self, tmp_path: Path) -> None:
        tokens = LocalTokens(tmp_path / "users.json")
        old = tokens.add("ann", ["security-analyst"])
        with pytest.raises(UserExists, match="already exists"):
            tokens.add("ann", ["security-analyst"])
        new = tokens.add("ann", ["security-lead"], replace=True)
        with pytest.raises(AuthenticationError):
            tokens.verify(old)
        with pytest.raises(AuthenticationError):
            tokens.verify(new[:-1] + ("A" if new[-1] != "A" else "B"))
        assert tokens.verify(new).roles == ["security-lead"]

    def test_the_first_admin_is_created_only_when_there_are_no_users(self, tmp_path: Path) -> None:
        users = tmp_path / "users.json"
        token = ensure_first_admin(users)
        assert token is not None
        assert "incident-commander" in LocalTokens(users).verify(token).roles
        assert ensure_first_admin(users) is None


class TestOidc:
    @pytest.fixture
    def issuer(self) -> OidcIssuer:
        return OidcIssuer()

    async def test_valid_token_gives_the_subject_and_groups(self, issuer: OidcIssuer) -> None:
        async with httpx.AsyncClient(transport=issuer.transport()) as http:
            verifier = OidcVerifier(issuer.settings(), http)
            actor = await verifier.authenticate(issuer.token("cleo", ["ciso", "staff"]))
            assert (actor.id, actor.roles) == (oidc("cleo"), ["ciso"])  # staff: a group that grants nothing
            await verifier.authenticate(issuer.token("pat", ["cpo"]))
            assert issuer.fetches == 1  # the key set is cached

    @pytest.mark.parametrize(
        ("what", "kwargs", "message"),
        [
            ("expired", {"expires_in": -120}, "expired"),
            ("wrong audience", {"aud": "another-api"}, "audience"),
            ("wrong issuer", {"iss": "https://evil.example"}, "issuer"),
            ("unknown key", {"kid": "k2"}, "unknown key"),
        ],
    )
    async def test_bad_tokens_are_refused(
        self, issuer: OidcIssuer, what: str, kwargs: dict[str, object], message: str
    ) -> None:
        async with httpx.AsyncClient(transport=issuer.transport()) as http:
            verifier = OidcVerifier(issuer.settings(), http)
            with pytest.raises(AuthenticationError, match=message):
                await verifier.authenticate(issuer.token("tom", ["cto"], **kwargs))  # type: ignore[arg-type]

    async def test_a_token_signed_by_another_key_or_unsigned_is_refused(self, issuer: OidcIssuer) -> None:
        from joserfc.jwk import OctKey
        from joserfc.jwt import encode as encode_jwt

        async with httpx.AsyncClient(transport=issuer.transport()) as http:
            verifier = OidcVerifier(issuer.settings(), http)
            with pytest.raises(AuthenticationError, match="signature"):
                await verifier.authenticate(issuer.token("tom", ["cto"], key=issuer.other_key))
            with warnings.catch_warnings():  # joserfc warns, rightly, when asked to make these
                warnings.simplefilter("ignore")
                unsigned = encode_jwt({"alg": "none"}, {"sub": "tom", "groups": ["cto"]}, None, algorithms=["none"])
            with pytest.raises(AuthenticationError, match="algorithm"):
                await verifier.authenticate(unsigned)
            public_pem = issuer.key.public_key().public_bytes(
                encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
            )
            # The classic confusion attack: HMAC keyed with the public key.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hs = encode_jwt(
                    {"alg": "HS256", "kid": "k1"},
                    {"sub": "tom", "groups": ["cto"]},
                    OctKey.import_key(public_pem.decode()[:40]),
                    algorithms=["HS256"],
                )
            with pytest.raises(AuthenticationError, match="algorithm"):
                await verifier.authenticate(hs)

    async def test_missing_groups_claim_is_refused_and_nested_claims_are_read(self, issuer: OidcIssuer) -> None:
        async with httpx.AsyncClient(transport=issuer.transport()) as http:
            verifier = OidcVerifier(issuer.settings(), http)
            with pytest.raises(AuthenticationError, match="groups"):
                await verifier.authenticate(issuer.token("tom", None))
            nested = OidcVerifier(issuer.settings().model_copy(update={"groups_claim": "realm_access.roles"}), http)
            token = issuer.token("tom", None, extra={"realm_access": {"roles": ["cto"]}})
            assert (await nested.authenticate(token)).roles == ["cto"]

    async def test_a_rotated_key_is_fetched_once_on_first_sight(self, issuer: OidcIssuer) -> None:
        async with httpx.AsyncClient(transport=issuer.transport()) as http:
            verifier = OidcVerifier(issuer.settings(), http, min_refresh_seconds=0)
            await verifier.authenticate(issuer.token("tom", ["cto"]))
            rotated = OidcIssuer()
            issuer.jwks = {"keys": [*issuer.jwks["keys"], {**rotated.jwks["keys"][0], "kid": "k2"}]}
            actor = await verifier.authenticate(rotated.token("tom", ["cto"], kid="k2"))
            assert actor.id == oidc("tom") and issuer.fetches == 2

    async def test_combined_sends_jwts_to_oidc_and_other_tokens_to_local(
        self, issuer: OidcIssuer, tmp_path: Path
    ) -> None:
        local = LocalTokens(tmp_path / "users.json")
        token = local.add("carol", ["incident-commander"])
        async with httpx.AsyncClient(transport=issuer.transport()) as http:
            both = CombinedAuthenticator(local, OidcVerifier(issuer.settings(), http))
            assert (await both.authenticate(token)).id == "local:carol"
            assert (await both.authenticate(issuer.token("cleo", ["ciso"]))).id == oidc("cleo")
            local_only = CombinedAuthenticator(local, None)
            with pytest.raises(AuthenticationError):
                await local_only.authenticate(issuer.token("cleo", ["ciso"]))
