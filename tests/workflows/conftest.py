"""Fixtures for pause workflow tests: a fresh pause world per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client

from tests.support.harness import Harness, pause_harness


@pytest_asyncio.fixture
async def harness(temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path) -> AsyncIterator[Harness]:
    dsn, pglog = postgres
    async with pause_harness(temporal_client, dsn, pglog, tmp_path) as h:
        yield h
