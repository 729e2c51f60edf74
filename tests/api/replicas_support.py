"""Replicas of the API over one shared database (``tests.apidb.support`` makes one per test): replica worlds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowUpdateInput, WorkflowUpdateHandle

from pausegate.apidb.database import ApiDatabase
from pausegate.app import create_app, serve
from pausegate.auth.users.postgres import PgUserDirectory
from pausegate.config import ApiSettings, Settings, StateDatabaseSettings
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.people import Actor
from tests.api.support import PEOPLE, ApiWorld, OidcIssuer, write_runbook
from tests.support.harness import Harness


class InFlight(Interceptor):
    """Counts the updates in flight through every client built with it: the measured, not the intended, peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Counting(next, self)


class _Counting(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, counter: InFlight) -> None:
        super().__init__(next)
        self.counter = counter

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
        # execute_update waits for the COMPLETED stage inside this call: it spans the update's flight.
        self.counter.now += 1
        self.counter.started += 1
        self.counter.peak = max(self.counter.peak, self.counter.now)
        try:
            return await super().start_workflow_update(input)
        finally:
            self.counter.now -= 1


def counted_client(client: Client, counter: InFlight) -> Client:
    """Another client on the same connection whose updates ``counter`` counts."""
    return Client(client.service_client, namespace=client.namespace, data_converter=client.data_converter,
                  interceptors=[counter])


def replica_settings(harness: Harness, tmp_path: Path, state_db: StateDatabaseSettings, **api: Any) -> Settings:
    write_runbook(harness, tmp_path / "runbooks")
    return harness.settings.model_copy(update={"api": ApiSettings(
        runbooks_dir=tmp_path / "runbooks", users_file=tmp_path / "unused-users.json",
        refusal_log=tmp_path / "unused-refusals.jsonl", state="postgres", state_db=state_db, **api,
    )})


@asynccontextmanager
async def replicas(
    harness: Harness,
    tmp_path: Path,
    state_db: StateDatabaseSettings,
    *,
    count: int = 2,
    client: Client | None = None,
    extra_people: Sequence[Actor] = (),
    api: dict[str, Any] | None = None,
    **app_options: Any,
) -> AsyncIterator[list[ApiWorld]]:
    """``count`` API replicas, each its own app (own pools, limiter, recorder) and server, over one state
    database; users are added once, through the shared directory, and hold on every replica."""
    settings = replica_settings(harness, tmp_path, state_db, **(api or {}))
    key = open_evidence_store(settings.evidence).signing_key
    with ApiDatabase(state_db) as db:
        directory = PgUserDirectory(db, key)
        people = {p.id: p for p in [*PEOPLE, *extra_people]}
        tokens = {p.id: directory.issue(None, p.id, list(p.roles))[1] for p in people.values()}
    worlds: list[ApiWorld] = []
    async with AsyncExitStack() as stack:
        for _ in range(count):
            app = create_app(settings, client or harness.client, tuning=harness.tuning, **app_options)
            url = await stack.enter_async_context(
                serve(settings, harness.client, host="127.0.0.1", port=0, app=app))
            worlds.append(ApiWorld(harness=harness, url=url, settings=settings, tokens=dict(tokens),
                                   issuer=OidcIssuer(), app=app))
        try:
            yield worlds
        finally:
            for world in worlds:
                for c in world.clients.values():
                    await c.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(world: ApiWorld, path: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=world.url, timeout=30.0) as http:
        return await http.get(path, headers=bearer(token))
