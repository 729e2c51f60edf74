"""Passkeys in the console, in Chromium with its virtual authenticator (the DevTools protocol's WebAuthn
domain, driven through Playwright): two leaders enroll passkeys, an admin confirms them, a pause starts
under a runbook that requires signed approvals, and the leaders approve with their passkeys; the program
resumes. The console is reached as ``localhost``: an IP address is not a valid RP ID."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from playwright.async_api import Browser, expect

from tests.api.support import NARROWED_PLAN
from tests.approvals.conftest import signed_runbook
from tests.console.support import LIVE_TIMEOUT_MS, ConsoleWorld, Person, console_world
from tests.support.harness import Harness

AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
                 "isUserVerified": True, "automaticPresenceSimulation": True}


class LocalhostWorld(ConsoleWorld):
    """The console world reached as http://localhost:<port>."""

    @property
    def url(self) -> str:
        return self.api.url.replace("127.0.0.1", "localhost")


@pytest_asyncio.fixture
async def console(harness: Harness, tmp_path: Path, browser: Browser) -> AsyncIterator[LocalhostWorld]:
    harness.runbook = signed_runbook(harness.program)
    async with console_world(harness, tmp_path, browser) as world:
        local = LocalhostWorld(api=world.api, browser=world.browser, console=world.console, people=world.people)
        state = world.api.app.state.api
        api = state.settings.api.model_copy(update={"passkey_rp_id": "localhost", "passkey_origins": [local.url]})
        state.settings = state.settings.model_copy(update={"api": api})
        yield local


async def with_authenticator(person: Person) -> str:
    """A virtual authenticator in ``person``'s browser (user verification on); its id."""
    cdp = await person.context.new_cdp_session(person.page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return str(added["authenticatorId"])


async def test_two_leaders_enroll_passkeys_approve_with_them_and_the_program_resumes(console: LocalhostWorld) -> None:
    leaders = {}
    for who in ("cleo", "pat"):
        leader = await console.sign_in(who)
        await with_authenticator(leader)
        page = await leader.open("/console/keys")
        await page.get_by_role("button", name="Add a passkey").click()
        await expect(page.locator("#main .flash")).to_contain_text("enrolled")
        await expect(page.locator("[data-fact=key]")).to_contain_text("not yet confirmed")
        leaders[who] = leader

    ada = await console.sign_in("ada")
    keys = await ada.open("/console/keys")
    for who in ("cleo", "pat"):
        await keys.get_by_role("button", name=f"Confirm local:{who}'s key").click()
        await expect(keys.locator("#main .flash")).to_contain_text(f"of local:{who} confirmed")
    await expect(keys.locator("[data-fact=unconfirmed]")).to_have_count(0)

    # The pause starts after the keys were confirmed: its key ring holds both.
    p = console.program
    started = await console.http("carol").post("/v1/pauses", json={"program": p, "reason": "telemetry readable"})
    assert started.status_code == 201, started.text
    await console.api.wait_for_state("UNDER_REVIEW", timeout=90)
    await console.api.complete_review()
    proposed = await console.http("sam").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
    assert proposed.status_code == 200, proposed.text
    view = await console.api.wait_for(lambda v: (v.get("signoff") or {}).get("nonce") is not None, what="a nonce")
    assert sorted(k["kind"] for k in view["signoff"]["ring"]["keys"]) == ["passkey", "passkey"]

    for who, role in (("cleo", "ciso"), ("pat", "cpo")):
        signoff = await leaders[who].open(f"/console/pauses/{p}/plan")
        # What is signed is on the page before the passkey is asked.
        await expect(signoff.locator("[data-fact=signed-plan-digest]")).to_have_text(view["plan"]["plan_digest"])
        await signoff.get_by_label("Comment (required)").fill(f"{role}: narrowed access reviewed")
        await signoff.get_by_role("button", name="Approve with your passkey").click()
        await expect(signoff.get_by_role("status").first).to_contain_text("Approved", timeout=LIVE_TIMEOUT_MS)
        await expect(signoff.locator(f"li[data-actor='local:{who}'] [data-fact=approval-kind]")).to_contain_text(
            "signed with passkey")

    final = await console.api.wait_for_state("RESUMED", timeout=90)
    assert [(a["actor_id"], a["signature"]["key"]["kind"]) for a in final["approvals"]] == [
        ("local:cleo", "passkey"), ("local:pat", "passkey")]
    for person in (*leaders.values(), ada):
        person.assert_clean()
