"""Fixtures for API tests: a pause world per test, and the API served in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as world:
        yield world
