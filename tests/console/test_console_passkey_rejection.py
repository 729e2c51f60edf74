"""Rejecting with a passkey in the console, in Chromium with its virtual authenticator: under a runbook
that requires signed approvals a leader's passkey signs the rejection statement (decision reject, the
reason as its comment) and the plan is void; a leader without a passkey rejecting with a token alone is
refused and the plan stands."""

from __future__ import annotations

from playwright.async_api import expect

from tests.api.support import NARROWED_PLAN
from tests.console.support import LIVE_TIMEOUT_MS
from tests.console.test_console_passkeys import LocalhostWorld, console, with_authenticator

__all__ = ["console"]  # the fixture, from the approval test


async def test_a_leader_rejects_with_a_passkey_and_a_token_alone_is_refused(console: LocalhostWorld) -> None:
    cleo = await console.sign_in("cleo")
    await with_authenticator(cleo)
    page = await cleo.open("/console/keys")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("#main .flash")).to_contain_text("enrolled")
    ada = await console.sign_in("ada")
    keys = await ada.open("/console/keys")
    await keys.get_by_role("button", name="Confirm local:cleo's key").click()
    await expect(keys.locator("#main .flash")).to_contain_text("of local:cleo confirmed")

    p = console.program
    started = await console.http("carol").post("/v1/pauses", json={"program": p, "reason": "telemetry readable"})
    assert started.status_code == 201, started.text
    await console.api.wait_for_state("UNDER_REVIEW", timeout=90)
    await console.api.complete_review()
    proposed = await console.http("sam").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
    assert proposed.status_code == 200, proposed.text
    await console.api.wait_for(lambda v: (v.get("signoff") or {}).get("nonce") is not None, what="a nonce")

    # tom holds no passkey: his page offers a plain rejection, which the runbook does not count.
    tom = await console.sign_in("tom")
    plain = await tom.open(f"/console/pauses/{p}/plan")
    await plain.get_by_label("Reason (required)").fill("not narrow enough")
    await plain.get_by_role("button", name="Reject", exact=True).click()
    await expect(plain.locator("#main")).to_contain_text("rejections signed", timeout=LIVE_TIMEOUT_MS)
    assert (await console.api.view())["plan"] is not None

    signoff = await cleo.open(f"/console/pauses/{p}/plan")
    await signoff.get_by_label("Reason (required)").fill("the analysts' grant still covers typed content")
    await signoff.get_by_role("button", name="Reject with your passkey").click()
    await expect(signoff.get_by_role("status").first).to_contain_text("Plan rejected", timeout=LIVE_TIMEOUT_MS)
    view = await console.api.wait_for(lambda v: v.get("plan") is None, what="the plan voided")
    signed = [e for e in view["timeline"] if e["action"] == "plan.rejection.signed"]
    assert [e["actor"] for e in signed] == ["local:cleo"] and signed[0]["detail"].startswith("passkey key ")
    for person in (cleo, ada, tom):
        person.assert_clean()
