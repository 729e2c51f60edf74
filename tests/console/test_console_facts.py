"""What each page shows equals what the JSON API answers for the same pause, at each stage of it.

Pages mark the facts they show (``data-fact``); this test reads them from the rendered page and compares
them with ``GET /v1/pauses/{program}`` (and the report) as the same person sees it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page

from tests.api.support import NARROWED_PLAN, REVIEW, evidence_for
from tests.console.support import ConsoleWorld, Person, console_world
from tests.support.harness import Harness


def moment(text: str | None) -> datetime:
    assert text, "no timestamp"
    return datetime.fromisoformat(text)


async def text(where: Locator) -> str:
    return (await where.inner_text()).strip()


async def seconds(where: Locator) -> float | None:
    value = await where.get_attribute("data-seconds")
    return float(value) if value else None


def contain_seconds(view: dict[str, Any]) -> float | None:
    c = view["containment"]
    if not (c["started_at"] and c["contained_at"]):
        return None
    return (moment(c["contained_at"]) - moment(c["started_at"])).total_seconds()


async def same_seconds(where: Locator, expected: float | None) -> None:
    shown = await seconds(where)
    assert (shown is None) == (expected is None), (shown, expected)
    if shown is not None and expected is not None:
        assert abs(shown - expected) < 0.001, (shown, expected)


async def check_board(page: Page, view: dict[str, Any]) -> None:
    row = page.locator(f"tr[data-program='{view['program']}']")
    assert await text(row.locator("[data-fact=state]")) == view["state"]
    assert await text(row.locator("[data-fact=severity]")) == view["severity"]
    assert await text(row.locator("[data-fact=commander]")) == view["commander"]
    assert moment(await row.locator("[data-fact=started-at]").get_attribute("datetime")) == moment(view["started_at"])
    await same_seconds(row.locator("[data-fact=time-to-contain]"), contain_seconds(view))
    assert await text(row.locator("[data-fact=agents-halted]")) == str(view["progress"]["agents_halted"])
    assert await text(row.locator("[data-fact=agents-total]")) == str(view["progress"]["agents_total"])
    assert await text(row.locator("[data-fact=open-items]")) == str(
        sum(1 for i in view["checklist"] if not i["completed_by"]))
    assert await text(row.locator("[data-fact=approvals]")) == f"{len(view['approvals'])} of {view['quorum']}"


async def check_summary(page: Page, view: dict[str, Any]) -> None:
    summary = page.locator("dl.summary")
    assert await text(summary.locator("[data-fact=state]")) == view["state"]
    assert await text(summary.locator("[data-fact=severity]")) == view["severity"]
    assert await text(summary.locator("[data-fact=commander]")) == view["commander"]
    assert await text(summary.locator("[data-fact=reason]")) == view["reason"]
    assert await text(summary.locator("[data-fact=incident-id]")) == view["incident_id"]
    assert moment(await summary.locator("[data-fact=started-at]").get_attribute("datetime")) == \
        moment(view["started_at"])
    await same_seconds(summary.locator("[data-fact=time-to-contain]"), contain_seconds(view))
    assert await text(summary.locator("[data-fact=items-done]")) == str(
        sum(1 for i in view["checklist"] if i["completed_by"]))
    assert await text(summary.locator("[data-fact=items-total]")) == str(len(view["checklist"]))
    assert await text(summary.locator("[data-fact=approvals]")) == f"{len(view['approvals'])} of {view['quorum']}"


async def check_pause_page(page: Page, view: dict[str, Any]) -> None:
    await check_summary(page, view)
    progress = view["progress"]
    ledger = page.locator("#ledger-h + div")
    for fact, key in [("agents-halted", "agents_halted"), ("agents-total", "agents_total"),
                      ("agents-unconfirmed", "agents_unconfirmed"), ("datasets-verified", "datasets_verified"),
                      ("grants-recorded", "grants_recorded"), ("revoke-statements", "revoke_statements"),
                      ("evidence-bundles", "evidence_bundles")]:
        assert await text(ledger.locator(f"[data-fact={fact}]")) == str(progress[key]), fact
    assert await text(ledger.locator("[data-fact=switch]")) == ("off" if progress["switch_off"] else "still on")
    for dataset in view["exposure"]:
        row = ledger.locator(f"tr[data-dataset='{dataset['dataset']}']")
        assert await text(row.locator("[data-fact=roles-with-access]")) == str(dataset["roles_with_access"])
    for item in view["checklist"]:
        entry = page.locator(f"li[data-item='{item['id']}']")
        assert await text(entry.locator("[data-fact=item-roles]")) == ", ".join(item["roles"])
        assert moment(await entry.locator("[data-fact=item-due]").get_attribute("datetime")) == moment(item["due_at"])
        if item["completed_by"]:
            assert await text(entry.locator("[data-fact=item-completed-by]")) == item["completed_by"]
            uris = [e["uri"] for e in item["evidence"]]
            shown = await text(entry.locator("[data-fact=item-evidence]"))
            assert all(uri in shown for uri in uris), (uris, shown)
        else:
            assert await text(entry.locator("[data-fact=item-status]")) == "open"
    timeline = page.locator("table.timeline tbody tr")
    assert await timeline.count() == len(view["timeline"])
    actors = [await text(c) for c in await page.locator("[data-fact=timeline-actor]").all()]
    assert actors == [e["actor"] for e in reversed(view["timeline"])]


async def check_plan_page(page: Page, view: dict[str, Any]) -> None:
    await check_summary(page, view)
    record = view["plan"]
    assert await text(page.locator("[data-fact=approval-digest]")) == view["approval_digest"]
    assert await text(page.locator("[data-fact=plan-digest]")) == record["plan_digest"]
    assert await text(page.locator("[data-fact=plan-proposed-by]")) == record["proposed_by"]
    assert await text(page.locator("[data-fact=plan-summary]")) == record["plan"]["summary"]
    assert await text(page.locator("[data-fact=plan-agents]")) == record["plan"]["agents"]["mode"]
    conditions = [await text(c) for c in await page.locator("[data-fact=plan-conditions] li").all()]
    assert conditions == record["plan"]["conditions"]
    collection = record["plan"].get("collection")
    shown = await text(page.locator("[data-fact=plan-collection]"))
    assert shown == (f"only {', '.join(collection['data_types'])}" if collection else "as before")
    consent_only = record["plan"].get("consent_required") or record["plan"]["agents"]["mode"] == "consented"
    shown = await text(page.locator("[data-fact=plan-consent]"))
    assert shown == ("only employees who consented resume" if consent_only else "not required")
    grants = [await text(g) for g in await page.locator("[data-fact=plan-grant]").all()]
    assert grants == [
        "\t".join([g["dataset"], g["role"], g["table"], ", ".join(g["privileges"]),
                   ", ".join(g["columns"]) if g.get("columns") else "all"])
        for g in record["plan"]["grants"]
    ]
    assert record["diff"], "the plan's diff against the scope"
    for diff in record["diff"]:
        block = page.locator(f"div.diff[data-dataset='{diff['dataset']}']")
        for kind in ("loses", "keeps", "gains"):
            assert await text(block.locator(f"[data-fact=diff-{kind}]")) == str(diff[kind])
            roles = block.locator(f"[data-fact=diff-{kind}-roles]")
            if diff[f"{kind}_roles"]:
                assert await text(roles) == ", ".join(diff[f"{kind}_roles"])
            else:
                assert await roles.count() == 0
    approvals = [await a.get_attribute("data-actor") for a in await page.locator("[data-fact=approval]").all()]
    assert approvals == [a["actor_id"] for a in view["approvals"]]
    current = sum(1 for a in view["approvals"] if a["digest"] == view["approval_digest"])
    assert await text(page.locator("[data-fact=approvals-count]")) == str(current)
    assert await text(page.locator("[data-fact=quorum]")) == str(view["quorum"])


async def check_report_page(page: Page, view: dict[str, Any], report: dict[str, Any]) -> None:
    status = report["status"]
    assert await text(page.locator("[data-fact=report-digest]")) == view["report"]["sha256"]
    assert await text(page.locator("[data-fact=report-outcome]")) == status["state"]
    assert await text(page.locator("[data-fact=report-incident]")) == status["incident_id"]
    assert await text(page.locator("[data-fact=report-commander]")) == status["commander"]
    await same_seconds(page.locator("[data-fact=report-time-to-contain]"), contain_seconds(status))
    approvers = [await a.get_attribute("data-actor") for a in await page.locator("[data-fact=report-approval]").all()]
    assert approvers == [a["actor_id"] for a in status["approvals"]]
    for item in status["checklist"]:
        shown = await text(page.locator(f"tr[data-item='{item['id']}'] [data-fact=report-item-by]"))
        assert shown == (item["completed_by"] or "not completed")


async def check_all(console: ConsoleWorld, person: Person) -> dict[str, Any]:
    p = console.program
    view = await console.view(person.name)
    await check_board(await person.open("/console/"), view)
    await check_pause_page(await person.open(f"/console/pauses/{p}"), view)
    if view["plan"] is not None:
        await check_plan_page(await person.open(f"/console/pauses/{p}/plan"), view)
    # The pages were read after the API; nothing moved in between (else the comparison proved nothing).
    assert await console.view(person.name) == view
    return view


@pytest.mark.slow
class TestPagesShowTheApisFacts:
    async def test_board_pause_plan_and_report_pages_match_the_json_api(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        async with console_world(harness, tmp_path, browser) as console:
            await self._run(console)

    async def _run(self, console: ConsoleWorld) -> None:
        p = console.program
        answer = await console.http("carol").post("/v1/pauses", json={"program": p, "reason": "readable by all",
                                                                     "severity": "critical"})
        assert answer.status_code == 201
        await console.api.wait_for_state("UNDER_REVIEW")
        ann = await console.sign_in("ann")

        # Under review, half the checklist done.
        for item, who, name in REVIEW[:3]:
            done = await console.http(who).post(f"/v1/pauses/{p}/checklist/{item}",
                                                json={"evidence": [evidence_for(item, name)], "note": f"by {who}"})
            assert done.status_code == 200
        await check_all(console, ann)

        # Awaiting approval with one approval.
        for item, who, name in REVIEW[3:]:
            done = await console.http(who).post(f"/v1/pauses/{p}/checklist/{item}",
                                                json={"evidence": [evidence_for(item, name)]})
            assert done.status_code == 200
        proposed = await console.http("sam").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
        digest = proposed.json()["digest"]
        await console.api.wait_for(lambda v: bool(v["plan"] and v["plan"]["diff"]), what="the plan's diff")
        approved = await console.http("cleo").post(f"/v1/pauses/{p}/approvals", json={"digest": digest,
                                                                                     "comment": "yes"})
        assert approved.status_code == 200
        view = await check_all(console, ann)
        assert view["state"] == "AWAITING_APPROVAL" and len(view["approvals"]) == 1

        # Resumed, with its report.
        approved = await console.http("pat").post(f"/v1/pauses/{p}/approvals", json={"digest": digest,
                                                                                    "comment": "yes"})
        assert approved.status_code == 200
        await console.api.wait_for(lambda v: v["state"] == "RESUMED" and v["report"] is not None, timeout=90,
                                   what="resumed with its report")
        view = await check_all(console, ann)
        report = (await console.http("ann").get(f"/v1/pauses/{p}/report")).json()
        await check_report_page(await ann.open(f"/console/pauses/{p}/report"), view, report)
        ann.assert_clean()
