"""Fixtures for console tests: one headless Chromium per session, a console world per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.console.support import CHROMIUM, ConsoleWorld, console_world
from tests.support.harness import Harness


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium driven by Playwright (Playwright cannot download its own browser here)."""
    if not os.access(CHROMIUM, os.X_OK):
        # Not a skip: CI installs it (.ci/run), and a browser test that silently does not run proves nothing.
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium", pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture
async def console(harness: Harness, tmp_path: Path, browser: Browser) -> AsyncIterator[ConsoleWorld]:
    async with console_world(harness, tmp_path, browser) as world:
        yield world
