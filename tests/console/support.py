"""The console in a real browser: the API world (real Temporal, PostgreSQL, fleet, worker) served on a real
port, and one headless Chromium whose contexts are the people, each signed in with their own token.

Every page a person opens is watched for what must never happen: a JavaScript dialog, a request to
another origin, a Content-Security-Policy violation, an uncaught page error. ``Person.assert_clean``
fails the test on any of them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Request, expect

from pausegate.console.state import ConsoleState
from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LIVE_TIMEOUT_MS = 60_000
"""How long a live page may take to show what the workflow did (containment, a resume)."""


@dataclass
class Person:
    """One person's browser context, signed in to the console."""

    name: str
    context: BrowserContext
    page: Page
    origin: str
    dialogs: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Record on ``page`` everything ``assert_clean`` forbids."""

        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        def on_request(request: Request) -> None:
            parts = urlsplit(request.url)
            if f"{parts.scheme}://{parts.netloc}" != self.origin and parts.scheme not in ("data", "blob", "about"):
                self.foreign_requests.append(request.url)

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
                self.csp_violations.append(message.text)

        page.on("dialog", on_dialog)
        page.on("request", on_request)
        page.on("console", on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"{self.name} saw dialogs: {self.dialogs}"
        assert self.foreign_requests == [], f"{self.name}'s pages requested other origins: {self.foreign_requests}"
        assert self.csp_violations == [], f"{self.name}'s pages violated the CSP: {self.csp_violations}"
        assert self.page_errors == [], f"{self.name}'s pages threw: {self.page_errors}"

    async def open(self, path: str) -> Page:
        await self.page.goto(self.origin + path)
        return self.page

    async def csrf_token(self) -> str:
        """The session's CSRF token as the page holds it (the sign-out form carries it)."""
        field = self.page.locator("form[action='/console/sign-out'] input[name=csrf_token]")
        value = await field.get_attribute("value")
        assert value
        return value

    async def forge_post(self, path: str, fields: dict[str, str]) -> Page:
        """Submit a form to ``path`` from this person's current console page, as a person who edited the
        page could: same origin, their own session and CSRF token, fields the page did not offer."""
        fields = {"csrf_token": await self.csrf_token(), **fields}
        await self.page.evaluate(
            """([action, fields]) => {
                const form = document.createElement('form');
                form.method = 'post';
                form.action = action;
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement('input');
                    input.type = 'hidden'; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [path, fields],
        )
        await self.page.wait_for_load_state("load")
        return self.page


@dataclass
class ConsoleWorld:
    """The API world, its console's state, and the browser the people use."""

    api: ApiWorld
    browser: Browser
    console: ConsoleState
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def program(self) -> str:
        return self.api.program

    async def context(self) -> BrowserContext:
        context = await self.browser.new_context(base_url=self.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        return context

    async def sign_in(self, name: str, *, token: str | None = None) -> Person:
        """A new browser context for ``name``, signed in through the sign-in form with their token."""
        context = await self.context()
        page = await context.new_page()
        person = Person(name=name, context=context, page=page, origin=self.url)
        person.watch(page)
        await page.goto(self.url + "/console/")
        await expect(page).to_have_url(re.compile(r"/console/sign-in"))
        await page.get_by_label("Your token").fill(token or self.api.tokens[name])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("[data-fact=whoami]")).to_have_text(f"local:{name}")
        self.people[name] = person
        return person

    async def view(self, who: str = "carol") -> dict[str, Any]:
        """The pause as the JSON API shows it to ``who``."""
        return await self.api.view(who)

    def http(self, who: str) -> httpx.AsyncClient:
        return self.api.client(who)


@asynccontextmanager
async def console_world(
    harness: Harness, tmp_path: Path, browser: Browser, **options: Any
) -> AsyncIterator[ConsoleWorld]:
    async with api_world(harness, tmp_path / "api", **options) as api:
        world = ConsoleWorld(api=api, browser=browser, console=api.app.state.console)
        try:
            yield world
        finally:
            # Browsers first: their live streams end with their connections, so the server stops at once.
            for person in world.people.values():
                await person.context.close()
