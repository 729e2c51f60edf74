"""The exposure's derived cause in the console (issue 27): a reviewer's pause page says since when the
data was readable company-wide, by whom, through which path and for how long, in the summary (live
fragments too) and beside the root-cause item; a caller without a review role is shown none of it; an
actor or a path named with markup is shown as text."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from markupsafe import escape
from playwright.async_api import Browser, expect
from psycopg import sql

from pausegate.models.origins import CAUSE_ITEM
from tests.api.support import ApiWorld, api_world
from tests.console.support import console_world
from tests.console.test_console_hostile import no_injected_markup
from tests.console.test_console_http import signed_in
from tests.console.test_console_visibility import events
from tests.support.fault_report import record_result
from tests.support.harness import Harness


async def pause_until_review(api: ApiWorld) -> None:
    answer = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
    assert answer.status_code == 201, answer.text
    await api.wait_for_state("UNDER_REVIEW")


async def headline_of(api: ApiWorld, who: str = "sam") -> dict[str, Any]:
    """The origin document's headline as the API serves it to a reviewer (``?scope=true``)."""
    answer = await api.client(who).get(f"/v1/pauses/{api.program}", params={"scope": "true"})
    assert answer.status_code == 200, answer.text
    headline = answer.json()["origins"]["headline"]
    assert headline is not None
    return dict(headline)


def item_block(page: str, item: str) -> str:
    """The checklist entry of ``item`` in a pause page's HTML."""
    start = page.index(f'<li id="item-{item}"')
    return page[start:page.index("</li>", start)]


@pytest_asyncio.fixture
async def paused(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as api:
        console = api.app.state.console
        console.heartbeat_seconds, console.stream_seconds = 0.2, 1.5  # short streams that end by themselves
        await pause_until_review(api)
        yield api


class TestWhoSeesTheDerivedCause:
    async def test_a_reviewer_sees_since_when_by_whom_and_through_what_and_a_role_less_caller_nothing(
        self, paused: ApiWorld
    ) -> None:
        api, p = paused, paused.program
        h = await headline_of(api)
        # the worked example's leak: the migration's grant, run as schema_migrations by the seeding superuser
        assert h["role"] == "schema_migrations" and h["through"].endswith("SELECT granted to all_employees")
        by = f'by <span data-fact="origin-by">{escape(h["by"])}</span>'
        role = '(as <span data-fact="origin-role">schema_migrations</span>)'
        through = f'through <span data-fact="origin-through">{escape(h["through"])}</span>'
        async with signed_in(api, "sam") as reviewer:  # security-lead: owns the root-cause item
            page = (await reviewer.get(f"/console/pauses/{p}")).text
            assert 'data-fact="origin-headline">readable company-wide since <time' in page
            assert by in page and role in page and through in page and 'data-fact="origin-duration"' in page
            cause = item_block(page, CAUSE_ITEM)
            assert 'data-fact="derived-cause">Derived cause (statement log): readable company-wide since' in cause
            assert through in cause and escape(h["statement"][:40]) in cause
            assert "derived-cause" not in item_block(page, "access-review")  # only beside the root-cause item
            plan = (await reviewer.get(f"/console/pauses/{p}/plan")).text
            assert through in plan  # the plan page's summary is the same fragment
            status, streamed = await events(reviewer, f"/console/pauses/{p}/events?page=pause")
            assert status == 200 and "event: summary" in streamed and through in streamed
        async with signed_in(api, "ada") as stranger:  # the admin: no role in the program
            page = (await stranger.get(f"/console/pauses/{p}")).text
            assert "UNDER_REVIEW" in page  # the redacted page itself is shown
            for hidden in ("origin-headline", "derived-cause", "readable-since", "schema_migrations",
                           "dashboard_author", h["through"], escape(h["through"])):
                assert hidden not in page, hidden
        record_result("the exposure's derived cause shown to anyone who opens the pause", "the admin (no role in "
                      "the program) opens the pause's console page", injected=1,
                      outcome="no opening time, actor, role, path or statement on the page; a reviewer sees them")


@pytest.mark.slow
class TestHostileNamesInTheCause:
    async def test_an_actor_and_a_path_named_with_markup_are_shown_as_text(
        self, harness: Harness, tmp_path: Path, browser: Browser
    ) -> None:
        tag = secrets.token_hex(3)
        # Executed as markup, either name would open a dialog (the person's page records it).
        actor = f"<img src=x onerror=alert('{tag}')>"
        group = f"<svg onload=alert('{tag}')>"
        dsn = harness.database_dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            # The example's company-wide grants go, each revoked by the role that granted it (a path closed
            # before the pause is no path of its scope), so the only company-wide opening left is the one the
            # hostile login makes to the hostile group.
            for grantor, revoke in (
                ("schema_migrations", "REVOKE SELECT ON telemetry.keystrokes, telemetry.mouse_events FROM "
                                      "all_employees, PUBLIC"),
                ("dashboard_author", "REVOKE SELECT ON analytics.recent_keystrokes FROM all_employees"),
            ):
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(grantor)))
                conn.execute(revoke)  # type: ignore[arg-type]
                conn.execute("RESET ROLE")
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(actor)))
            conn.execute(sql.SQL("GRANT {} TO employee_0001").format(sql.Identifier(group)))
            conn.execute(sql.SQL("GRANT SELECT ON telemetry.keystrokes TO {} WITH GRANT OPTION").format(
                sql.Identifier(actor)))
        try:
            with psycopg.connect(dsn, user=actor, autocommit=True) as conn:
                conn.execute(sql.SQL("GRANT SELECT ON telemetry.keystrokes TO {}").format(sql.Identifier(group)))
            async with console_world(harness, tmp_path, browser) as console:
                await pause_until_review(console.api)
                h = await headline_of(console.api)
                assert h["by"] == actor and h["through"] == f"telemetry.keystrokes: SELECT granted to {group}"

                async with signed_in(console.api, "sam") as reviewer:
                    raw = (await reviewer.get(f"/console/pauses/{console.program}")).text
                for name in (actor, group):
                    assert escape(name) in raw and name not in raw

                sam = await console.sign_in("sam")
                page = await sam.open(f"/console/pauses/{console.program}")
                summary = page.locator("[data-fact=origin-headline]")
                await expect(summary.locator("[data-fact=origin-by]")).to_have_text(actor)
                await expect(summary.locator("[data-fact=origin-through]")).to_have_text(h["through"])
                cause = page.locator(f"li[data-item='{CAUSE_ITEM}'] [data-fact=derived-cause]")
                await expect(cause.locator("[data-fact=origin-by]")).to_have_text(actor)
                await expect(cause.locator("[data-fact=origin-statement]")).to_contain_text(group)
                await no_injected_markup(page)
                sam.assert_clean()  # no dialog, no foreign request, no CSP violation, no page error
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for role in (group, actor):
                    conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        record_result("an actor and an access path named with markup", "a login role and a group role named "
                      "<img onerror> and <svg onload> open the data company-wide; a reviewer opens the pause",
                      injected=2, outcome="both names shown as text in the summary and beside the root-cause "
                      "item; no element injected, no dialog, no request elsewhere")
