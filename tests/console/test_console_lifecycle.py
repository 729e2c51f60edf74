"""The worked example done in the browser by the people who run it, each in their own browser context."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.api.support import NARROWED_PLAN, REVIEW
from tests.console.support import LIVE_TIMEOUT_MS, ConsoleWorld, console_world
from tests.support.harness import HarnessFactory

OFFLINE = "agent-00007"


def grant_lines() -> str:
    """The narrowed plan's grants as the plan form takes them."""
    lines = []
    for g in NARROWED_PLAN["grants"]:
        columns = f" {','.join(g['columns'])}" if g.get("columns") else ""
        lines.append(f"{g['dataset']} {g['role']} {g['table']} {','.join(g['privileges'])}{columns}")
    return "\n".join(lines)


async def set_online(fleet_url: str, program: str, agent_ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=fleet_url) as client:
        answer = await client.post(f"/admin/programs/{program}/online", json={"agent_ids": agent_ids})
        answer.raise_for_status()


async def complete_in_place(page: Page, item: str, evidence_uri: str, note: str = "") -> None:
    """Fill an item's evidence and submit it where it stands (htmx swaps the page's main part)."""
    entry = page.locator(f"li[data-item='{item}']")
    await entry.get_by_label("Where it is (URI)").fill(evidence_uri)
    if note:
        await entry.get_by_label("Note (optional)").fill(note)
    await entry.get_by_role("button", name=f"Complete {item}").click()


async def mark_page(page: Page) -> None:
    # A marker only a reload would wipe: what the page shows later came to it live, not by reloading.
    await page.evaluate("window.__pausegateSamePage = true")


async def same_page(page: Page) -> bool:
    return bool(await page.evaluate("window.__pausegateSamePage === true"))


@pytest.mark.slow
class TestLifecycleInTheBrowser:
    async def test_the_example_goes_from_pause_to_report_in_the_browser(
        self, make_harness: HarnessFactory, tmp_path: Path, browser: Browser
    ) -> None:
        async with make_harness(agents=50, offline_agents=[OFFLINE]) as harness, \
                console_world(harness, tmp_path, browser) as console:
            await self._run(console)

    async def _run(self, console: ConsoleWorld) -> None:
        p = console.program
        carol = await console.sign_in("carol")
        page = carol.page

        # The board lists the program without a pause; the commander starts one, with a confirmation step.
        row = page.locator(f"tr[data-program='{p}']")
        await expect(row.locator("[data-fact=state]")).to_have_text("no pause")
        await row.get_by_role("link", name=f"Pause {p}…").click()
        await page.get_by_label("Reason").fill("telemetry readable company-wide")
        await page.get_by_label("Severity").select_option("critical")
        await page.get_by_role("button", name="Review before pausing").click()
        await expect(page.get_by_role("heading", name=f"Pause {p}?")).to_be_visible()
        assert (await console.http("carol").get("/v1/pauses")).json() == [], "the confirmation step started nothing"
        await page.get_by_role("button", name="Pull the kill switch").click()

        # Containment runs live on the pause page: the offline agent holds it in CONTAINING, listed.
        await expect(page).to_have_url(f"{console.url}/console/pauses/{p}")
        await expect(page.get_by_role("status").first).to_contain_text("Pause started")
        await mark_page(page)
        summary = page.locator("#summary-h + div")
        await expect(summary.locator("[data-fact=state]")).to_have_text("CONTAINING", timeout=LIVE_TIMEOUT_MS)
        ledger = page.locator("#ledger-h + div")
        await expect(ledger.locator("[data-fact=agents-unconfirmed]")).to_have_text("1", timeout=LIVE_TIMEOUT_MS)
        await expect(ledger.locator("[data-fact=agents-halted]")).to_have_text("49")
        await expect(ledger.locator("[data-fact=switch]")).to_have_text("off")

        # The agent returns; the page shows every agent halted and the review open, without a reload.
        await set_online(console.api.harness.fleet.url, p, [OFFLINE])
        await expect(summary.locator("[data-fact=state]")).to_have_text("UNDER_REVIEW", timeout=LIVE_TIMEOUT_MS)
        await expect(ledger.locator("[data-fact=agents-halted]")).to_have_text("50")
        await expect(ledger.locator("[data-fact=agents-unconfirmed]")).to_have_text("0")
        await expect(summary.locator("[data-fact=time-to-contain]")).not_to_have_text("containing…")
        assert await same_page(page), "the pause page reloaded instead of updating live"
        view = await console.view()
        await expect(ledger.locator("[data-fact=revoke-statements]")).to_have_text(
            str(view["progress"]["revoke_statements"]))
        await expect(ledger.locator("[data-fact=evidence-bundles]")).to_have_text(
            str(view["progress"]["evidence_bundles"]))

        # Each reviewer completes their items in place, in their own browser.
        for item, who, evidence in REVIEW:
            person = console.people.get(who) or await console.sign_in(who)
            reviewer = await person.open(f"/console/pauses/{p}")
            uri = f"https://wiki.example.com/inc-42/{evidence}"
            if who == "dave":
                # By keyboard alone: type into the labelled field, Enter submits the item's form.
                field = reviewer.locator(f"li[data-item='{item}']").get_by_label("Where it is (URI)")
                await field.focus()
                await reviewer.keyboard.type(uri)
                await reviewer.keyboard.press("Enter")
            else:
                await complete_in_place(reviewer, item, uri)
            entry = reviewer.locator(f"li[data-item='{item}']")
            await expect(entry.locator("[data-fact=item-completed-by]")).to_have_text(f"local:{who}")
            await expect(reviewer.get_by_role("status").first).to_contain_text(f"Checklist item {item} completed")
            # The answer takes the keyboard focus (the button pressed was replaced by the swap).
            await expect(reviewer.locator("#main .flash").first).to_be_focused()
        view = await console.view()
        assert all(i["completed_by"] for i in view["checklist"]), view["checklist"]

        # The security lead proposes the narrowed plan on the plan page.
        sam = console.people["sam"]
        plan_page = await sam.open(f"/console/pauses/{p}/plan")
        await plan_page.get_by_label("Summary").fill(NARROWED_PLAN["summary"])
        await plan_page.locator("#plan-grants").fill(grant_lines())
        await plan_page.get_by_label("Conditions (one a line)").fill("\n".join(NARROWED_PLAN["conditions"]))
        await plan_page.get_by_role("button", name="Propose this plan").click()
        await expect(plan_page.get_by_role("status").first).to_contain_text("Plan proposed")
        view = await console.view()
        assert view["state"] == "AWAITING_APPROVAL" and view["plan"]["proposed_by"] == "local:sam"
        await expect(plan_page.locator("[data-fact=approval-digest]")).to_have_text(view["approval_digest"])
        await expect(plan_page.locator("[data-fact=plan-grant]")).to_have_count(len(NARROWED_PLAN["grants"]))
        # The proposer holds no approver role, and is told so where the approval form would be.
        await expect(plan_page.locator("[data-fact=approve-blocked]")).to_have_text(
            "You cannot approve: approving a plan is for roles ciso, cpo, cto; local:sam has security-lead")

        # Two leaders approve, each with a comment; the commander's page watches the pause resume live.
        await carol.open(f"/console/pauses/{p}")
        await mark_page(carol.page)
        for who, role in (("cleo", "ciso"), ("pat", "cpo")):
            leader = await console.sign_in(who)
            signoff = await leader.open(f"/console/pauses/{p}/plan")
            await expect(signoff.locator("[data-fact=diff-loses]")).not_to_have_text("0", timeout=LIVE_TIMEOUT_MS)
            await signoff.get_by_label("Comment (required)").fill(f"{role}: narrowed access reviewed")
            await signoff.get_by_role("button", name="Approve").click()
            await expect(signoff.get_by_role("status").first).to_contain_text("Approved")
            await expect(signoff.locator(f"li[data-actor='local:{who}']")).to_contain_text(role)
        summary = carol.page.locator("#summary-h + div")
        await expect(summary.locator("[data-fact=state]")).to_have_text("RESUMED", timeout=LIVE_TIMEOUT_MS)
        assert await same_page(carol.page)

        # The report: rendered, and downloadable as Markdown and JSON.
        final = await console.api.wait_for(lambda v: v["report"] is not None, what="the report")
        report = await carol.open(f"/console/pauses/{p}/report")
        await expect(report.locator("[data-fact=report-outcome]")).to_have_text("RESUMED")
        await expect(report.locator("[data-fact=report-incident]")).to_have_text(final["incident_id"])
        approvers = report.locator("[data-fact=report-approval]")
        await expect(approvers).to_have_count(2)
        async with report.expect_download() as markdown_download:
            await report.get_by_role("link", name="Download Markdown").click()
        markdown = await asyncio.to_thread(Path(await (await markdown_download.value).path()).read_text)
        api_markdown = await console.http("carol").get(f"/v1/pauses/{p}/report", params={"format": "markdown"})
        assert markdown == api_markdown.text
        async with report.expect_download() as json_download:
            await report.get_by_role("link", name="Download JSON").click()
        document = await asyncio.to_thread(Path(await (await json_download.value).path()).read_text)
        assert json.loads(document)["status"]["state"] == "RESUMED"

        for person in console.people.values():
            person.assert_clean()
