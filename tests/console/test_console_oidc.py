"""Signing in to the console through an identity provider (OIDC authorization code + PKCE), in Chromium.

The provider is ``tests.support.oidc_provider`` (Authlib's server side) on ``localhost``; the console is
on ``127.0.0.1``: two sites, so the provider's redirect back is a cross-site navigation, as in production.
The API trusts the provider's real JWKS over loopback, so the console's ID token is checked by the very
verifier that checks bearer tokens.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from pausegate.auth.oidc import oidc_actor_id
from pausegate.config import OidcSettings
from pausegate.console.oidc import CALLBACK_PATH, PENDING_COOKIE
from pausegate.console.sessions import SESSION_COOKIE
from tests.api.support import NARROWED_PLAN
from tests.console.support import ConsoleWorld, Person, console_world
from tests.support.harness import Harness
from tests.support.oidc_provider import OidcProvider, User, serve_provider

CLIENT_ID = "pausegate-console"
AUDIENCE = "pausegate-api"
OIDC_BUTTON = "Sign in with your identity provider"


@asynccontextmanager
async def oidc_console(
    harness: Harness, tmp_path: Path, browser: Browser, user: User
) -> AsyncIterator[tuple[ConsoleWorld, OidcProvider]]:
    """A console whose ``[api.oidc]`` trusts a running test provider and is registered with it as a client."""
    provider = OidcProvider(client_id=CLIENT_ID, audience=AUDIENCE, user=user)
    async with serve_provider(provider):
        settings = OidcSettings(
            issuer=provider.url, audience=AUDIENCE, jwks_url=f"{provider.url}/jwks", leeway_seconds=5,
            client_id=CLIENT_ID, authorization_endpoint=f"{provider.url}/authorize",
            token_endpoint=f"{provider.url}/token",
        )
        async with console_world(harness, tmp_path, browser, oidc_settings=settings) as console:
            # The redirect URI is derived from the request (no redirect_uri configured): the console's own origin.
            provider.redirect_uri = console.url + CALLBACK_PATH
            yield console, provider


async def new_person(console: ConsoleWorld, name: str) -> Person:
    context = await console.context()
    page = await context.new_page()
    person = Person(name=name, context=context, page=page, origin=console.url)
    person.watch(page)
    console.people[name] = person
    return person


async def sign_in_via_provider(person: Person, start: str = "/console/") -> None:
    """From a console page to sign-in, to the provider, and its "Allow" (callers wait for where it ends)."""
    await person.open(start)
    await expect(person.page).to_have_url(re.compile(r"/console/sign-in\?"))
    await person.page.get_by_role("link", name=OIDC_BUTTON).click()
    await person.page.get_by_role("button", name="Allow").click()


def forget_provider_requests(person: Person, provider: OidcProvider) -> None:
    """The sign-in's own visit to the provider is the one other origin a console page may lead to."""
    assert all(url.startswith(provider.url + "/") for url in person.foreign_requests), \
        person.foreign_requests
    person.foreign_requests.clear()


async def cookie_names(person: Person) -> set[str]:
    return {c["name"] for c in await person.context.cookies()}


async def refused(page: Page, message: str) -> None:
    """The callback answered with the sign-in page and ``message`` (waits for the navigation to end there)."""
    await expect(page.locator("[data-fact=sign-in-error]")).to_contain_text(message)
    await expect(page.get_by_role("link", name=OIDC_BUTTON)).to_be_visible()  # start again from here


@pytest.mark.slow
class TestOidcSignIn:
    async def test_an_approver_by_groups_claim_signs_in_through_the_provider_and_approves(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        p = harness.program
        # Not a local user: the approver role comes only from the provider's groups claim, scoped to this program.
        user = User(sub="cleo-oidc", groups=[f"pausegate:{p}:ciso", "staff"], email="Cleo@Example.com")
        async with oidc_console(harness, tmp_path, browser, user) as (console, provider):
            api = console.api
            started = await console.http("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
            assert started.status_code == 201, started.text
            await api.wait_for_state("UNDER_REVIEW")
            await api.complete_review()
            proposed = await console.http("sam").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
            assert proposed.status_code == 200, proposed.text
            view = await api.wait_for_state("AWAITING_APPROVAL")
            sessions_before = len(console.console.sessions)

            cleo = await new_person(console, "cleo-oidc")
            plan_path = f"/console/pauses/{p}/plan"
            await sign_in_via_provider(cleo, plan_path)
            actor_id = oidc_actor_id(provider.url, "cleo-oidc")
            # Back on the page asked for (``next`` survived the round trip), signed in as the provider's subject.
            await expect(cleo.page).to_have_url(console.url + plan_path)
            await expect(cleo.page.locator("[data-fact=whoami]")).to_have_text(actor_id)
            assert len(provider.answers) == 1 and len(provider.issued) == 1
            assert len(console.console.sessions) == sessions_before + 1
            # The pre-session is spent: its cookie is gone along with the server's record.
            assert PENDING_COOKIE not in await cookie_names(cleo)
            assert len(console.console.pending_sign_ins) == 0
            # The session cookie keeps its strict settings whatever signed the person in.
            session_cookie = next(c for c in await cleo.context.cookies() if c["name"] == SESSION_COOKIE)
            assert session_cookie["sameSite"] == "Strict" and session_cookie["httpOnly"]

            await cleo.page.get_by_label("Comment (required)").fill("ciso via SSO: narrowed access reviewed")
            await cleo.page.get_by_role("button", name="Approve").click()
            await expect(cleo.page.get_by_role("status").first).to_contain_text("Approved")
            await expect(cleo.page.locator(f"li[data-actor='{actor_id}']")).to_contain_text("ciso")
            after = await console.view()
            mine = [a for a in after["approvals"] if a["actor_id"] == actor_id]
            assert [(a["role"], a["digest"], a["email"]) for a in mine] == \
                [("ciso", view["approval_digest"], "cleo@example.com")], after["approvals"]

            forget_provider_requests(cleo, provider)
            cleo.assert_clean()

    async def test_foreign_tokens_and_forged_or_replayed_answers_open_no_session(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        p = harness.program
        user = User(sub="mallory", groups=[f"pausegate:{p}:ciso"])
        async with oidc_console(harness, tmp_path, browser, user) as (console, provider):
            sessions = console.console.sessions
            person = await new_person(console, "mallory")

            # A token from another issuer, then one for another audience: the API's verifier says which.
            for change, reason in (({"issuer_claim": "https://other-idp.example.test"}, "token from another issuer"),
                                   ({"audience": "some-other-app"}, "token is for another audience")):
                provider.issuer_claim, provider.audience = None, AUDIENCE
                for name, value in change.items():
                    setattr(provider, name, value)
                issued = len(provider.issued)
                await sign_in_via_provider(person)
                await refused(person.page, f"The identity provider's token does not sign anyone in here ({reason}).")
                assert len(provider.issued) == issued + 1, "the provider did issue a token; the console refused it"
                assert len(sessions) == 0
                assert SESSION_COOKIE not in await cookie_names(person)
            provider.issuer_claim, provider.audience = None, AUDIENCE

            # A tampered state: the browser comes back with a state other than the one it was sent with.
            provider.tamper_state = True
            await sign_in_via_provider(person)
            provider.tamper_state = False
            await refused(person.page, "does not match the sign-in this browser started (state)")
            assert len(sessions) == 0
            # The genuine answer, sent afterwards, finds nothing: the attempt was spent by the forged one.
            await person.page.goto(provider.answers[-1])
            await refused(person.page, "did not start, or one already used or expired")
            assert len(sessions) == 0 and SESSION_COOKIE not in await cookie_names(person)

            # A replayed answer: after a real sign-in, the same callback URL opens nothing, in this browser or another.
            await sign_in_via_provider(person)
            await expect(person.page.locator("[data-fact=whoami]")).to_have_text(oidc_actor_id(provider.url, "mallory"))
            assert len(sessions) == 1
            for replayer in (person, await new_person(console, "eve")):
                await replayer.page.goto(provider.answers[-1])
                await refused(replayer.page, "did not start, or one already used or expired")
                assert len(sessions) == 1, "a replayed answer opened a session"
            assert SESSION_COOKIE not in await cookie_names(console.people["eve"])

            forget_provider_requests(person, provider)
            for someone in console.people.values():
                someone.assert_clean()
