"""Fixtures for API tests: a pause world per test, and the API served in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client

from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness, pause_harness


@pytest_asyncio.fixture
async def harness(temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path) -> AsyncIterator[Harness]:
    dsn, pglog = postgres
    async with pause_harness(temporal_client, dsn, pglog, tmp_path) as h:
        yield h


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as world:
        yield world
