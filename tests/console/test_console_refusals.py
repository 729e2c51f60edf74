"""Every refusal reaches the person in the browser with its reason, and changes nothing.

Where the rules already say no, the page says why instead of offering the action; a person who posts
anyway (an edited page, a second tab, a plan changed under them) is refused by the workflow and reads
the same sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from pausegate.models.people import Actor
from tests.api.support import NARROWED_PLAN, evidence_for
from tests.console.support import LIVE_TIMEOUT_MS, ConsoleWorld, console_world
from tests.support.harness import Harness

# A commander who also holds an approver role: only separation of duties keeps them from approving.
CODY = Actor(id="cody", roles=["incident-commander", "cto"])


async def start(console: ConsoleWorld) -> dict[str, Any]:
    answer = await console.http("cody").post("/v1/pauses", json={"program": console.program, "reason": "leak"})
    assert answer.status_code == 201, answer.text
    return await console.api.wait_for_state("UNDER_REVIEW")


async def refusal_shown(console: ConsoleWorld, who: str, code: str, reason: str) -> None:
    page = console.people[who].page
    await expect(page.locator("[data-fact=refusal-code]")).to_have_text(code)
    await expect(page.locator("[data-fact=refusal-reason]")).to_have_text(reason)


def facts(view: dict[str, Any]) -> tuple[Any, ...]:
    """What a refused action must leave as it was."""
    return (view["state"], view["approval_digest"], [(a["actor_id"], a["digest"]) for a in view["approvals"]],
            [(i["id"], i["completed_by"], i["completed_at"]) for i in view["checklist"]])


@pytest.mark.slow
class TestRefusalsInTheBrowser:
    async def test_each_refusal_is_shown_with_its_reason_and_changes_nothing(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        async with console_world(harness, tmp_path, browser, extra_people=[CODY]) as console:
            await self._run(console)

    async def _run(self, console: ConsoleWorld) -> None:
        p = console.program
        await start(console)
        pause_url = f"/console/pauses/{p}"

        # Wrong role: the page says so where the form would be; an edited page's post is refused by the workflow.
        ann = await console.sign_in("ann")
        page = await ann.open(pause_url)
        wrong_role = "completing item 'narrowed-access' is for roles data-engineer, security-lead; " \
                     "local:ann has security-analyst"
        blocked = page.locator("li[data-item='narrowed-access'] [data-fact=item-blocked]")
        await expect(blocked).to_have_text(f"You cannot complete this now: {wrong_role}")
        await expect(page.locator("form[data-form='complete-narrowed-access']")).to_have_count(0)
        before = await console.view()
        await ann.forge_post(f"{pause_url}/checklist/narrowed-access", {
            "evidence-name-0": "access-design", "evidence-uri-0": "https://wiki.example.com/design"})
        await refusal_shown(console, "ann", "wrong_role", wrong_role)
        assert facts(await console.view()) == facts(before)
        # … and the refusal is on the pause's record under the person who tried.
        await console.api.wait_for(lambda v: any(
            e["actor"] == "local:ann" and not e["accepted"] and "narrowed-access" in e["detail"]
            for e in v["timeline"]), what="ann's refusal in the timeline")

        await console.api.complete_review()
        proposed = await console.http("sam").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
        assert proposed.status_code == 200, proposed.text
        digest = proposed.json()["digest"]
        plan_url = f"{pause_url}/plan"

        # The commander who paused holds an approver role, and is still told they may not approve.
        cody = await console.sign_in("cody")
        page = await cody.open(plan_url)
        separation = "local:cody paused this program as commander and may not approve"
        await expect(page.locator("[data-fact=approve-blocked]")).to_have_text(f"You cannot approve: {separation}")
        before = await console.view()
        await cody.forge_post(f"{plan_url}/approve", {"digest": digest, "role": "cto", "comment": "mine"})
        await refusal_shown(console, "cody", "separation_of_duties", separation)
        assert facts(await console.view()) == facts(before)

        # Approving twice: a second tab, opened before the first approval, still offers the form.
        cleo = await console.sign_in("cleo")
        first_tab = await cleo.open(plan_url)
        second_tab = await cleo.context.new_page()
        cleo.watch(second_tab)
        await second_tab.goto(console.url + plan_url)
        await first_tab.get_by_label("Comment (required)").fill("reviewed")
        await first_tab.get_by_role("button", name="Approve").click()
        await expect(first_tab.get_by_role("status").first).to_contain_text("Approved")
        before = await console.view()
        assert [a["actor_id"] for a in before["approvals"]] == ["local:cleo"]
        await second_tab.get_by_label("Comment (required)").fill("again")
        await second_tab.get_by_role("button", name="Approve").click()
        await expect(second_tab.locator("[data-fact=refusal-code]")).to_have_text("duplicate_approval")
        await expect(second_tab.locator("[data-fact=refusal-reason]")).to_have_text("local:cleo has already approved")
        await expect(second_tab.locator("#refusal")).to_be_focused()  # read first, by keyboard and screen reader
        assert facts(await console.view()) == facts(before)
        # Once the page is current, it says why instead of offering the form.
        await second_tab.reload()
        await expect(second_tab.locator("[data-fact=approve-blocked]")).to_have_text(
            "You cannot approve: local:cleo has already approved")
        await second_tab.close()

        # A stale plan: the plan changes while an approver has it open; the page warns live, the approval is refused.
        pat = await console.sign_in("pat")
        page = await pat.open(plan_url)
        await expect(page.locator("[data-fact=approval-digest]")).to_have_text(digest)
        changed = {**NARROWED_PLAN, "conditions": [*NARROWED_PLAN["conditions"], "monthly access review"]}
        replaced = await console.http("sam").post(f"/v1/pauses/{p}/plan", json=changed)
        assert replaced.status_code == 200, replaced.text
        new_digest = replaced.json()["digest"]
        assert new_digest != digest
        await expect(page.locator("[data-fact=plan-changed]")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        before = await console.view()
        await page.get_by_label("Comment (required)").fill("looks right")
        await page.get_by_role("button", name="Approve").click()
        await expect(page.locator("[data-fact=refusal-code]")).to_have_text("stale_plan")
        await expect(page.locator("[data-fact=refusal-reason]")).to_contain_text(
            f"digest {digest[:12]}… is not the current plan and review ({new_digest[:12]}…)")
        after = await console.view()
        assert facts(after) == facts(before) and after["approvals"] == []

        for person in console.people.values():
            person.assert_clean()


@pytest.mark.slow
class TestSignOffPageWithoutTheRole:
    async def test_a_reviewer_without_a_sign_off_role_is_shown_why_not_and_no_form(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        async with console_world(harness, tmp_path, browser) as console:
            await console.http("carol").post("/v1/pauses", json={"program": console.program, "reason": "leak"})
            await console.api.wait_for_state("UNDER_REVIEW")
            for item, who, name in [("access-review", "ann", "access-report")]:
                answer = await console.http(who).post(f"/v1/pauses/{console.program}/checklist/{item}",
                                                      json={"evidence": [evidence_for(item, name)]})
                assert answer.status_code == 200
            dave = await console.sign_in("dave")
            page = await dave.open(f"/console/pauses/{console.program}/plan")
            await expect(page.locator("[data-fact=propose-blocked]")).to_have_text(
                "You cannot propose a plan: proposing a resume plan is for roles incident-commander, security-lead; "
                "local:dave has data-engineer")
            await expect(page.locator("form[data-form='propose']")).to_have_count(0)
            await expect(page.locator("[data-fact=no-plan]")).to_be_visible()
            dave.assert_clean()
