"""Fixtures for fault tests: a pause world whose worker runs in a process of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment


@pytest.fixture
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return str(temporal_env.client.service_client.config.target_host)


@pytest.fixture
def pglog(postgres: tuple[str, Path]) -> Path:
    return postgres[1]
