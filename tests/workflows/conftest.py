"""Fixtures for pause workflow tests: a fresh pause world per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from tests.support.harness import Harness, pause_harness

HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def make_harness(temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path) -> HarnessFactory:
    """Build a harness with options (offline agents, tuning, faults)."""
    dsn, pglog = postgres

    def make(**options: Any) -> AbstractAsyncContextManager[Harness]:
        return pause_harness(temporal_client, dsn, pglog, tmp_path, **options)

    return make


@pytest_asyncio.fixture
async def harness(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with make_harness() as h:
        yield h
