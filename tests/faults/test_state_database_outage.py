"""The API's state database away (its role refused logins, every session ended) and back, while two API
replicas take reviewer actions: each action is refused with 503 and Retry-After while it is away, nothing
is applied then, every action sent again under its Idempotency-Key is applied exactly once afterwards, and
both signed logs (users, refusals) are intact."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest

from pausegate.config import StateDatabaseSettings
from pausegate.embedded.api_database import API_ROLE
from pausegate.models.phase import Phase
from tests.api.replicas_support import replicas
from tests.api.support import REVIEW, ApiWorld, evidence_for, local
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.support.polling import polled


async def send(world: ApiWorld, who: str, item: str, evidence: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=world.url, timeout=60.0) as http:
        return await http.post(f"/v1/pauses/{world.program}/checklist/{item}",
                               json={"evidence": [evidence_for(item, evidence)]},
                               headers={"Authorization": f"Bearer {world.tokens[who]}", "Idempotency-Key": key})


async def get(world: ApiWorld, path: str) -> httpx.Response:
    """GET as the admin, retried as asked while a pooled connection the outage broke is replaced (503)."""
    async with httpx.AsyncClient(base_url=world.url, timeout=60.0) as http:
        async def asked() -> httpx.Response:
            r = await http.get(path, headers={"Authorization": f"Bearer {world.tokens['ada']}"})
            assert r.status_code != 503 or "Retry-After" in r.headers, r.text
            return r
        return await polled(asked, until=lambda r: r.status_code != 503, what=f"GET {path} served")


@pytest.mark.slow
async def test_the_state_database_away_and_back_under_two_replicas_loses_and_repeats_nothing(
    make_harness: HarnessFactory, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str],
    postgres: tuple[str, Path],
) -> None:
    actions = [(item, who, evidence, uuid.uuid4().hex) for item, who, evidence in REVIEW[:4]]
    async with make_harness(agents=20) as h, replicas(h, tmp_path, state_db[0], count=2) as (a, b):
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        refused = 0
        with psycopg.connect(postgres[0], autocommit=True) as su:
            su.execute(f"ALTER ROLE {API_ROLE} NOLOGIN")
            su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (API_ROLE,))
            try:
                for n, (item, who, evidence, key) in enumerate(actions):
                    r = await send((a, b)[n % 2], who, item, evidence, key)
                    assert r.status_code == 503, (item, r.status_code, r.text)
                    assert r.json()["error"] == "state_unavailable" and int(r.headers["Retry-After"]) >= 1
                    refused += 1
                assert not any(i.done for i in (await h.status()).checklist), "an action applied while refused"
            finally:
                su.execute(f"ALTER ROLE {API_ROLE} LOGIN")

        # Back: each action sent again (as a client told to retry does, same key), on the other replica too.
        for n, (item, who, evidence, key) in enumerate(actions):
            r = await polled(partial(send, (a, b)[n % 2], who, item, evidence, key),
                             until=lambda r: r.status_code != 503, what=f"{item} taken once the database is back")
            assert r.status_code == 200, (item, r.status_code, r.text)
            again = await send((b, a)[n % 2], who, item, evidence, key)
            assert again.status_code == 200, again.text

        status = await h.status()
        for item, who, _, _ in actions:
            entries = [e for e in status.timeline if e.actor == local(who) and e.action.startswith("checklist.")
                       and item in e.detail]
            assert len(entries) == 1, (item, [e.action for e in entries])
        for world in (a, b):
            await world.app.state.api.recorder.flush()
            refusals, users = await get(world, "/v1/refusals"), await get(world, "/v1/users/log")
            assert refusals.status_code == users.status_code == 200, (refusals.text, users.text)
            assert refusals.json()["chain_problems"] == [] and users.json()["chain_problems"] == []
        record_result("API state database away and back", "two replicas taking reviewer actions",
                      injected=refused, outcome=f"{refused} actions refused with 503 + Retry-After while away, none "
                      f"applied; each sent again applied exactly once; users and refusal logs intact")
