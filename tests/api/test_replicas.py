"""Two API replicas over one shared state database, against real Temporal and PostgreSQL: users and roles,
refusals, rate limits and the updates in flight on a pause hold for both together."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from pausegate.api.limits import ActionLimits
from pausegate.api.refusal_log import LOG_NAME, RefusalLog
from pausegate.config import StateDatabaseSettings
from pausegate.embedded.api_database import API_ROLE
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.people import Actor
from pausegate.models.state import PauseState
from pausegate.models.updates import CompleteItemInput
from pausegate.records.files import FileMedium
from pausegate.records.postgres import PgMedium
from pausegate.temporal.pauses import pause_handle
from pausegate.temporal.sealing import addressed_update, new_update_id
from tests.api.replicas_support import InFlight, counted_client, replicas
from tests.api.support import ApiWorld, evidence_for, local
from tests.apidb.support import tamper
from tests.support.harness import FAST_TUNING, Harness, pause_harness
from tests.support.polling import polled
from workflows.pause import PauseWorkflow


async def call(world: ApiWorld, method: str, path: str, token: str, *, headers: dict[str, str] | None = None,
               **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=world.url, timeout=60.0) as http:
        return await http.request(method, path, headers={"Authorization": f"Bearer {token}", **(headers or {})},
                                  **kwargs)


class TestUsersAcrossReplicas:
    async def test_a_user_or_role_changed_on_one_replica_is_enforced_by_the_other_at_once(
        self, harness: Harness, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        async with replicas(harness, tmp_path, state_db[0]) as (a, b):
            admin = a.tokens["ada"]
            r = await call(a, "POST", "/v1/users", admin, json={"name": "zed", "roles": ["security-analyst"]})
            assert r.status_code == 201, r.text
            zed = r.json()["token"]
            r = await call(b, "GET", "/v1/whoami", zed)
            assert r.status_code == 200 and r.json()["roles"] == ["security-analyst"]
            assert (await call(b, "GET", "/v1/users", zed)).status_code == 403

            assert (await call(a, "PUT", "/v1/users/zed/roles", admin, json={"roles": ["admin"]})).status_code == 200
            assert (await call(b, "GET", "/v1/users", zed)).status_code == 200  # B lets the new admin in

            assert (await call(b, "PUT", "/v1/users/zed/roles", admin,
                               json={"roles": ["security-analyst"]})).status_code == 200
            assert (await call(a, "GET", "/v1/users", zed)).status_code == 403  # and A no longer does

            assert (await call(a, "DELETE", "/v1/users/zed", admin)).status_code == 204
            assert (await call(b, "GET", "/v1/whoami", zed)).status_code == 401

            view = (await call(b, "GET", "/v1/users/log", admin)).json()
            zed_changes = [e["action"] for e in view["entries"] if any(c["name"] == "zed" for c in e["changes"])]
            assert zed_changes == ["user.added", "user.roles_changed", "user.roles_changed", "user.removed"]
            assert view["chain_problems"] == [] and view["outside_changes"] == 0


class TestRefusalsAcrossReplicas:
    async def test_refusals_written_by_both_form_one_chain_and_a_direct_edit_is_found(
        self, harness: Harness, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        outsiders = [Actor(id=f"outsider{n}", roles=["visitor"]) for n in range(6)]
        async with replicas(harness, tmp_path, state_db[0], extra_people=outsiders) as (a, b):

            async def refused(n: int) -> int:
                world = (a, b)[n % 2]
                r = await call(world, "POST", "/v1/pauses", world.tokens[f"outsider{n % 6}"],
                               json={"program": a.program, "reason": f"try {n}"})
                return r.status_code

            assert set(await asyncio.gather(*(refused(n) for n in range(24)))) == {403}
            for world in (a, b):
                await world.app.state.api.recorder.flush()  # counts pending in each replica's window
            admin = a.tokens["ada"]
            views = [(await call(w, "GET", "/v1/refusals", admin, params={"limit": 1000})).json() for w in (a, b)]
            assert views[0] == views[1] or views[0]["entries"] == views[1]["entries"][: len(views[0]["entries"])]
            view = (await call(a, "GET", "/v1/refusals", admin, params={"limit": 1000})).json()
            assert view["chain_problems"] == []
            per_actor: Counter[str] = Counter()
            for e in view["entries"]:
                per_actor[e["actor"]] += e["count"]
            assert {local(f"outsider{n}"): 4 for n in range(6)} == {k: v for k, v in per_actor.items()
                                                                   if k.startswith("local:outsider")}
            # Written by both replicas, the log is one chain: exported, the file log's check accepts it.
            key = open_evidence_store(a.settings.evidence).signing_key
            database = a.app.state.api.backends.database
            path = tmp_path / "exported-refusals.jsonl"
            await asyncio.to_thread(PgMedium(database.sync_pool.connection, LOG_NAME).export, FileMedium(path))
            assert RefusalLog.file(path, key).problems() == []

            # Someone with full database access makes the first refused outsider look like someone else.
            tamper(state_db[1], "UPDATE api_log_lines SET line = replace(line, 'local:outsider', 'local:someone') "
                                "WHERE log = 'refusals' AND seq = 1")
            view = (await call(b, "GET", "/v1/refusals", admin)).json()
            assert any(":2: does not follow line 1" in p for p in view["chain_problems"]), view["chain_problems"]


class TestRateLimitAcrossReplicas:
    async def test_a_caller_cannot_double_their_budget_by_alternating_replicas(
        self, harness: Harness, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        limits = ActionLimits(rate_per_second=0.01, burst=4)
        async with replicas(harness, tmp_path, state_db[0], limits=limits) as (a, b):
            codes = []
            for n in range(10):
                world = (a, b)[n % 2]
                r = await call(world, "POST", f"/v1/pauses/{a.program}/checklist/access-review", world.tokens["ann"],
                               json={"evidence": [evidence_for("access-review", "access-report")]})
                codes.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["Retry-After"]) >= 1
            assert codes.count(429) == 6, codes  # 4 of 10 in all, not 4 per replica
            assert set(codes) - {429} == {404}  # the budget was spent on actions that found no pause


async def start_review(world: ApiWorld) -> None:
    r = await call(world, "POST", "/v1/pauses", world.tokens["carol"],
                   json={"program": world.program, "reason": "leak"})
    assert r.status_code == 201, r.text
    await world.wait_for_state("UNDER_REVIEW")


def checklist_actions(h: Harness, status: PauseState) -> Counter[str]:
    """Checklist actions per actor, in the timeline and its archived parts."""
    entries = [e.model_dump(mode="json") for e in status.timeline] + [
        entry
        for ref in status.timeline_archived
        for entry in h.connectors.evidence_store.read_json(ref.uri.removeprefix("evidence://"))
    ]
    return Counter(e["actor"] for e in entries if e["accepted"] and e["action"].startswith("checklist."))


ANALYSTS = [Actor(id=f"analyst{n:02d}", roles=["security-analyst"]) for n in range(16)]
FLOOD_SECONDS = 5.0
ROGUES = 48  # more than Temporal takes in flight on one workflow (10)
PER_ANALYST = 4  # distinct actions each, every one sent to both replicas with one Idempotency-Key: 64 updates,
# past TUNING's continue-as-new, in 128 requests at once
TUNING = FAST_TUNING.model_copy(update={"continue_as_new_after_updates": 40})


class TestUpdatesInFlightAcrossReplicas:
    @pytest.mark.slow
    async def test_two_replicas_storm_one_pause_every_action_once_and_never_over_the_limit(
        self, temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path,
        state_db: tuple[StateDatabaseSettings, str],
    ) -> None:
        dsn, pglog = postgres
        counter = InFlight()
        client = counted_client(temporal_client, counter)
        async with pause_harness(temporal_client, dsn, pglog, tmp_path, agents=20, tuning=TUNING) as h, \
                replicas(h, tmp_path / "api", state_db[0], client=client, extra_people=ANALYSTS) as (a, b):
            await start_review(a)
            limit = a.settings.api.max_updates_in_flight_per_pause

            async def amend(who: str, n: int, world: ApiWorld) -> int:
                r = await call(world, "POST", f"/v1/pauses/{a.program}/checklist/access-review", world.tokens[who],
                               json={"evidence": [evidence_for("access-review", "access-report")], "note": f"{n}"},
                               headers={"Idempotency-Key": f"{who}-{n}"})
                return r.status_code

            counter.peak = 0
            started = time.perf_counter()
            codes = await asyncio.gather(*(
                amend(p.id, n, world) for n in range(PER_ANALYST) for p in ANALYSTS for world in (a, b)))
            elapsed = time.perf_counter() - started
            assert Counter(codes) == {200: 2 * PER_ANALYST * len(ANALYSTS)}
            status = await h.status()
            assert status.run_count > 1, "the storm crossed continue-as-new"
            done = checklist_actions(h, status)
            assert {p.id: done[local(p.id)] for p in ANALYSTS} == {p.id: PER_ANALYST for p in ANALYSTS}
            # Measured at the Temporal client both replicas send through, not taken from the limiter's word.
            assert 1 < counter.peak <= limit, counter.peak
            assert sum(w.app.state.api.limiter.peaks.get(a.program, 0) for w in (a, b)) > limit  # local alone: over
            slots = [w.app.state.api.limiter.shared for w in (a, b)]
            print(f"\nreplicas=2 requests={len(codes)} updates_started={counter.started} "
                  f"in_flight_peak={counter.peak} limit={limit} seconds={elapsed:.2f} "
                  f"woken={sum(s.woken for s in slots)} polled={sum(s.polled for s in slots)} "
                  f"races={sum(s.races for s in slots)}")
            shared = a.app.state.api.limiter.shared
            assert await shared.live(a.program) == 0  # every slot given back

    @pytest.mark.slow
    async def test_capacity_refusals_from_temporal_are_retried_never_lost(
        self, temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path,
        state_db: tuple[StateDatabaseSettings, str],
    ) -> None:
        """Something else (an old replica, a script with Temporal access) keeps the workflow's update slots
        busy: Temporal refuses with RESOURCE_EXHAUSTED, and the API queues and retries."""
        dsn, pglog = postgres
        tuning = TUNING.model_copy(update={"continue_as_new_after_updates": 15})
        async with pause_harness(temporal_client, dsn, pglog, tmp_path, agents=20, tuning=tuning) as h, \
                replicas(h, tmp_path / "api", state_db[0], extra_people=ANALYSTS,
                         limits=ActionLimits(wait_seconds=120.0)) as (a, b):
            await start_review(a)
            handle = pause_handle(temporal_client, a.program)
            stop = asyncio.Event()
            rogue = Actor(id="rogue", roles=["security-analyst"])
            refused = Counter[str]()

            async def flood() -> None:
                while not stop.is_set():
                    # Addressed as a client with Temporal access addresses its own updates: a bare one
                    # would be refused as a replay at once and never hold a slot.
                    uid = new_update_id()
                    pinned, message = await addressed_update(temporal_client, handle.id, CompleteItemInput(
                        actor=rogue, item_id="access-review",
                        evidence=[evidence_for("access-review", "access-report")]), uid, missing="no pause")
                    try:
                        await pinned.execute_update(PauseWorkflow.complete_item, message, id=uid)
                    except RPCError as exc:  # the rogue's own refusals are not the API's concern
                        refused[exc.status.name if exc.status else "?"] += 1

            async def flooded() -> bool:
                return bool(refused)

            rogues = [asyncio.create_task(flood()) for _ in range(ROGUES)]
            try:
                # The workflow is past its limit (Temporal refuses the rogue) before the reviewers act.
                await polled(flooded, what="Temporal refusing the rogue", every=0.05)
                requests = asyncio.gather(*(
                    call(w, "POST", f"/v1/pauses/{a.program}/checklist/access-review", w.tokens[p.id],
                         json={"evidence": [evidence_for("access-review", "access-report")], "note": f"{n}"},
                         headers={"Idempotency-Key": f"{p.id}-{n}"})
                    for n in range(3) for p in ANALYSTS[:8] for w in (a, b)))
                # The flood goes on for a while, then stops; what Temporal refused meanwhile lands after.
                await asyncio.wait([requests], timeout=FLOOD_SECONDS)
            finally:
                stop.set()
                await asyncio.gather(*rogues)
            codes = await requests
            assert Counter(r.status_code for r in codes) == {200: len(codes)}, [r.text for r in codes][:3]
            done = checklist_actions(h, await h.status())
            assert all(done[local(p.id)] == 3 for p in ANALYSTS[:8]), done
            retries = sum(w.app.state.api.limiter.capacity_retries for w in (a, b))
            print(f"\ncapacity_retries={retries} rogue_refusals={dict(refused)}")


class TestStateDatabaseOutage:
    async def test_an_unreachable_state_database_is_503_with_retry_after_never_500_or_401(
        self, harness: Harness, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str], postgres: tuple[str, Path]
    ) -> None:
        async with replicas(harness, tmp_path, state_db[0], count=1) as (a,):
            admin = a.tokens["ada"]
            assert (await call(a, "GET", "/v1/whoami", admin)).status_code == 200
            with psycopg.connect(postgres[0], autocommit=True) as su:
                su.execute(f"ALTER ROLE {API_ROLE} NOLOGIN")
                su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (API_ROLE,))
                try:
                    for method, path, body in [("GET", "/v1/whoami", None), ("GET", "/v1/users", None),
                                               ("POST", "/v1/users", {"name": "x", "roles": ["cto"]})]:
                        r = await call(a, method, path, admin, json=body)
                        assert r.status_code == 503, (path, r.status_code, r.text)
                        assert r.json()["error"] == "state_unavailable" and int(r.headers["Retry-After"]) >= 1
                        assert "pausegate_api" not in r.text and "postgres" not in r.text.lower()
                finally:
                    su.execute(f"ALTER ROLE {API_ROLE} LOGIN")

            async def answers() -> bool:
                return (await call(a, "GET", "/v1/whoami", admin)).status_code == 200

            await polled(answers, what="the pool replacing the connections the outage broke")
