"""Helpers for the fleet tests: a small fleet, in-process or over a socket, with its admin surface."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pausegate.connectors.fleet import HttpFleet
from pausegate.reference.fleet import FaultSettings, FleetSettings, create_app, serve_fleet

PROGRAM = "employee-telemetry"
NO_FAULTS = FaultSettings(latency_ms=0, jitter_ms=0, error_rate=0)
OFFLINE = ["agent-00003", "agent-00007"]


def small_fleet(**overrides: Any) -> FleetSettings:
    """50 agents of 5 employees, two of them offline, no latency, no telemetry."""
    values: dict[str, Any] = {
        "agents": 50,
        "employees": 5,
        "offline_agents": OFFLINE,
        "faults": NO_FAULTS,
        "tick_seconds": 0.05,
    }
    values.update(overrides)
    return FleetSettings.model_validate(values)


def ids(*numbers: int) -> list[str]:
    return [f"agent-{n:05d}" for n in numbers]


AGENTS = ids(*range(1, 13))  # the writing fleet's agents


@dataclass
class FleetUnderTest:
    """The connector under test, plus the fleet's admin surface to set up and observe."""

    connector: HttpFleet
    admin: httpx.AsyncClient
    program: str = PROGRAM

    async def _admin(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.admin.request(method, f"/admin/programs/{self.program}/{path}", json=body)
        response.raise_for_status()
        return response.json()

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._admin("GET", "stats")
        return result

    async def effects(self, agent_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = await self._admin("POST", "effects", {"agent_ids": agent_ids})
        return {r["agent_id"]: r for r in rows}

    async def offline(self, agent_ids: list[str]) -> None:
        await self._admin("POST", "offline", {"agent_ids": agent_ids})

    async def online(self, agent_ids: list[str]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._admin("POST", "online", {"agent_ids": agent_ids})
        return result

    async def wait_for_stats(
        self, condition: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> dict[str, Any]:
        """Poll the fleet's counters until ``condition`` holds; fail after ``within`` seconds."""
        return await eventually(self.stats, condition, within, "fleet stats")


async def eventually(
    read: Callable[[], Awaitable[Any]], condition: Callable[[Any], bool], within: float, what: str
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if condition(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} never met the condition within {within}s; last value: {value!r}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def open_fleet(
    kind: str, settings: FleetSettings, *, token: str | None = None
) -> AsyncIterator[FleetUnderTest]:
    """The fleet in-process (``asgi``) or on an ephemeral port of 127.0.0.1 (``socket``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if kind == "asgi":
        transport = httpx.ASGITransport(app=create_app(settings))
        async with (
            HttpFleet("http://fleet.test", token=token, timeout=5, transport=transport) as connector,
            httpx.AsyncClient(transport=transport, base_url="http://fleet.test", headers=headers) as admin,
        ):
            yield FleetUnderTest(connector, admin)
    else:
        async with (
            serve_fleet(settings) as running,
            HttpFleet(running.url, token=token, timeout=5) as connector,
            httpx.AsyncClient(base_url=running.url, headers=headers) as admin,
        ):
            yield FleetUnderTest(connector, admin)


@dataclass(frozen=True)
class Postgres:
    admin_dsn: str
    ingest_dsn: str
