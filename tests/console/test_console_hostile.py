"""Hostile text rendered inert, a cross-site form post refused, an expired session sent back to sign-in."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, expect

from tests.console.support import LIVE_TIMEOUT_MS, ConsoleWorld, console_world
from tests.console.test_console_lifecycle import grant_lines
from tests.support.harness import Harness

# Executed as markup, any of these would open a dialog or fetch from another origin: the person's page
# records both, so "inert" is observed, not assumed.
PAYLOAD = ('<script>alert("xss-script")</script>'
           '<img src="x" onerror="alert(\'xss-img\')">'
           '<img src="http://evil.test/pixel.png">'
           '"><svg onload="alert(\'xss-svg\')">')


async def no_injected_markup(page: Page) -> None:
    # The payload's elements exist nowhere in the document: its text was escaped, not parsed.
    assert await page.locator("img, svg, script:not([src])").count() == 0


@pytest.mark.slow
class TestHostileText:
    async def test_script_and_image_payloads_in_notes_plans_and_reasons_stay_text(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        async with console_world(harness, tmp_path, browser) as console:
            await self._run(console)

    async def _run(self, console: ConsoleWorld) -> None:
        p = console.program
        carol = await console.sign_in("carol")
        await carol.open(f"/console/pause?program={p}")
        await carol.page.get_by_label("Reason").fill(PAYLOAD)
        await carol.page.get_by_role("button", name="Review before pausing").click()
        await expect(carol.page.locator("dd").filter(has_text="xss-script")).to_have_text(PAYLOAD)
        await carol.page.get_by_role("button", name="Pull the kill switch").click()
        await expect(carol.page.locator("[data-fact=reason]")).to_have_text(PAYLOAD)
        await expect(carol.page.locator("[data-fact=state]")).to_have_text("UNDER_REVIEW", timeout=LIVE_TIMEOUT_MS)

        # A reviewer's note and evidence address carry the payload (and a javascript: URI, shown as text).
        ann = await console.sign_in("ann")
        page = await ann.open(f"/console/pauses/{p}")
        entry = page.locator("li[data-item='access-review']")
        await entry.get_by_label("Where it is (URI)").fill("javascript:alert('xss-uri')")
        await entry.get_by_label("Note (optional)").fill(PAYLOAD)
        await entry.get_by_role("button", name="Complete access-review").click()
        await expect(entry.locator("[data-fact=item-note]")).to_have_text(PAYLOAD)
        await expect(entry.locator("[data-fact=item-evidence]")).to_contain_text("javascript:alert('xss-uri')")
        assert await entry.locator("a[href^='javascript']").count() == 0
        await no_injected_markup(page)

        # The rest of the review through the API, then a plan whose summary and condition carry the payload.
        for item, who, name in [("root-cause", "sam", "root-cause-analysis"),
                                ("narrowed-access", "dave", "access-design"),
                                ("data-minimisation", "pia", "data-minimisation-decision"),
                                ("employee-notice", "pia", "employee-notice"),
                                ("legal-privacy-review", "lee", "legal-opinion")]:
            answer = await console.http(who).post(f"/v1/pauses/{p}/checklist/{item}", json={
                "evidence": [{"name": name, "uri": f"https://docs.example.com/{item}"}]})
            assert answer.status_code == 200, answer.text
        sam = await console.sign_in("sam")
        plan = await sam.open(f"/console/pauses/{p}/plan")
        await plan.get_by_label("Summary").fill(PAYLOAD)
        await plan.locator("#plan-grants").fill(grant_lines())
        await plan.get_by_label("Conditions (one a line)").fill(PAYLOAD)
        await plan.get_by_role("button", name="Propose this plan").click()
        await expect(plan.locator("[data-fact=plan-summary]")).to_have_text(PAYLOAD)
        await expect(plan.locator("[data-fact=plan-conditions] li")).to_have_text(PAYLOAD)
        view = await console.view()
        assert view["plan"]["plan"]["summary"] == PAYLOAD  # stored as typed: escaping is the page's job

        # Every page that shows the payloads, to a reviewer and a leader, live fragments included.
        cleo = await console.sign_in("cleo")
        for person, path in [(cleo, f"/console/pauses/{p}/plan"), (cleo, f"/console/pauses/{p}"),
                             (ann, f"/console/pauses/{p}"), (carol, "/console/")]:
            page = await person.open(path)
            await expect(page.locator("[data-fact=state]").first).to_have_text(
                re.compile("AWAITING_APPROVAL"), timeout=LIVE_TIMEOUT_MS)
            await no_injected_markup(page)
        await cleo.page.goto(console.url + f"/console/pauses/{p}/plan")
        await cleo.page.get_by_label("Comment (required)").fill(PAYLOAD)
        await cleo.page.get_by_role("button", name="Approve").click()
        await expect(cleo.page.locator(".approvals .note")).to_have_text(PAYLOAD)
        await no_injected_markup(cleo.page)

        for person in console.people.values():
            person.assert_clean()  # no dialog, no request to evil.test, no CSP violation, no page error


@pytest.mark.slow
class TestForgeryAndExpiry:
    async def test_a_form_on_another_site_cannot_act_and_an_expired_session_goes_back_to_sign_in(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        async with console_world(harness, tmp_path, browser) as console:
            await self._watchers_see_injection(console)
            await self._cross_site(console)
            await self._expiry(console)

    async def _watchers_see_injection(self, console: ConsoleWorld) -> None:
        # The hostile-text test passes when nothing is seen; this shows that something injected would be:
        # markup put into a console page behind the templates' back trips every watcher.
        mallory = await console.sign_in("tom")
        page = mallory.page
        async with page.expect_console_message(lambda m: "Content Security Policy" in m.text), \
                page.expect_request("http://evil.test/**"):
            await page.evaluate("""() => {
                const script = document.createElement('script');
                script.textContent = 'document.title = "ran"';
                document.body.appendChild(script);
                document.body.insertAdjacentHTML('beforeend', '<img src="http://evil.test/pixel.png">');
            }""")
        async with page.expect_event("dialog"):
            await page.evaluate("() => { setTimeout(() => alert('seen'), 0); }")
        assert mallory.csp_violations and mallory.foreign_requests and mallory.dialogs
        assert await page.title() != "ran", "the CSP let an inline script run"
        with pytest.raises(AssertionError):
            mallory.assert_clean()
        await mallory.context.close()
        del console.people["tom"]

    async def _cross_site(self, console: ConsoleWorld) -> None:
        carol = await console.sign_in("carol")
        token = await carol.csrf_token()
        evil = await carol.context.new_page()  # carol's own browser, signed in to the console, visits another site

        async def attacker_site(route: Route) -> None:
            # Even holding carol's real CSRF token (the worst case), the post comes from another origin.
            await route.fulfill(content_type="text/html", body=f"""<!doctype html><html><body>
                <form id="f" method="post" action="{console.url}/console/pauses">
                  <input name="csrf_token" value="{token}"><input name="program" value="{console.program}">
                  <input name="reason" value="forged"><input name="severity" value="critical">
                </form><script>document.getElementById('f').submit()</script></body></html>""")

        await evil.route("http://evil.test/**", attacker_site)
        async with evil.expect_navigation(url=re.compile(re.escape(console.url))):
            await evil.goto("http://evil.test/win-a-prize")
        await expect(evil.locator("[data-fact=refusal-code]")).to_have_text("cross_site")
        await expect(evil.locator("[data-fact=refusal-reason]")).to_contain_text("came from another site")
        assert (await console.http("carol").get("/v1/pauses")).json() == [], "the forged post started a pause"
        await evil.close()
        carol.assert_clean()

    async def _expiry(self, console: ConsoleWorld) -> None:
        ann = await console.sign_in("ann")
        console.console.heartbeat_seconds = 0.5  # the open board's stream notices the end within a heartbeat
        board = await ann.open("/console/")
        await expect(board.locator("[data-fact=whoami]")).to_have_text("local:ann")
        sessions = console.console.sessions
        idle = sessions.policy.idle_seconds
        sessions.clock = lambda: time.time() + idle + 1  # the session has now been idle too long

        # The page left open is told its session ended (by its live stream) …
        await expect(board.locator("[sse-swap=session]")).to_contain_text("Your session has ended",
                                                                          timeout=LIVE_TIMEOUT_MS)
        # … and the next click lands on sign-in, saying why, with the way back remembered.
        await board.goto(console.url + "/console/pause")
        await expect(board).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole%2Fpause&why=expired"))
        await expect(board.locator("[data-fact=sign-in-message]")).to_have_text(
            "Your session has expired. Sign in again.")
        await board.get_by_label("Your token").fill(console.api.tokens["ann"])
        await board.get_by_role("button", name="Sign in").click()
        await expect(board).to_have_url(f"{console.url}/console/pause")
        await expect(board.locator("[data-fact=whoami]")).to_have_text("local:ann")
        ann.assert_clean()
