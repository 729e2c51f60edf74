"""Fixtures for fault tests: a pause world whose worker runs in a process of its own."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.harness import Harness, pause_harness

HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def make_harness(temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path) -> HarnessFactory:
    dsn, pglog = postgres

    def make(**options: Any) -> AbstractAsyncContextManager[Harness]:
        return pause_harness(temporal_client, dsn, pglog, tmp_path, **options)

    return make


@pytest.fixture
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return str(temporal_env.client.service_client.config.target_host)


@pytest.fixture
def pglog(postgres: tuple[str, Path]) -> Path:
    return postgres[1]
