"""One actor cannot starve the others: a per-actor rate limit, and a fair per-pause queue of updates."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
import structlog

from pausegate.api.errors import Overloaded, Throttled
from pausegate.api.limiter import PauseLimiter
from pausegate.api.rate_limits.memory import ActionRateLimiter
from pausegate.errors import ActionRefused
from tests.api.support import ApiWorld, api_world, evidence_for
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.support.polling import polled


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every task that can run, run (no time passes; the limiter hands slots out synchronously)."""
    for _ in range(20):
        await asyncio.sleep(0)


class TestFairQueue:
    async def test_a_flooding_actor_never_holds_more_than_its_share_and_others_start_at_once(self) -> None:
        limiter = PauseLimiter(8)
        release = asyncio.Event()
        started: list[str] = []

        def call(who: str) -> object:
            async def run() -> str:
                started.append(who)
                await release.wait()
                return who
            return run

        flood = [asyncio.create_task(limiter.run("p", "mallory", call("mallory"))) for _ in range(100)]
        await settle()
        # One slot per actor: the rest stays free for everyone else.
        assert limiter.in_flight("p") == 1 and limiter.queued("p", "mallory") == 99
        ann = asyncio.create_task(limiter.run("p", "ann", call("ann")))
        await settle()
        assert started.count("ann") == 1, "ann's action started without waiting behind mallory's queue"
        release.set()
        assert await ann == "ann"
        assert len(await asyncio.gather(*flood)) == 100
        assert limiter.peaks["p"] <= 8 and limiter.in_flight("p") == 0

    async def test_free_slots_go_round_robin_between_actors(self) -> None:
        limiter = PauseLimiter(2, per_actor_in_flight=2)
        gates: dict[str, list[asyncio.Event]] = {}
        order: list[str] = []

        def call(who: str) -> object:
            gate = asyncio.Event()
            gates.setdefault(who, []).append(gate)

            async def run() -> None:
                order.append(who)
                await gate.wait()
            return run

        tasks = [asyncio.create_task(limiter.run("p", "a", call("a"))) for _ in range(6)]
        await settle()
        tasks += [asyncio.create_task(limiter.run("p", "b", call("b"))) for _ in range(2)]
        tasks += [asyncio.create_task(limiter.run("p", "c", call("c"))) for _ in range(2)]
        await settle()
        assert order == ["a", "a"]
        for every in gates.values():
            for gate in every:
                gate.set()
        await asyncio.gather(*tasks)
        # Each slot that frees goes to the next actor in turn (a, b, c, a, ...), never to the longest queue:
        # b and c were served before a's fourth action, and a's tail ran only once theirs were done.
        assert order == ["a", "a", "a", "b", "c", "a", "b", "c", "a", "a"]

    async def test_each_actor_queue_and_the_pause_queue_are_bounded(self) -> None:
        limiter = PauseLimiter(2, per_actor_queued=3, max_queued=5)
        release = asyncio.Event()

        async def wait() -> None:
            await release.wait()

        own = [asyncio.create_task(limiter.run("p", "mallory", wait)) for _ in range(4)]  # 1 running, 3 queued
        await settle()
        with pytest.raises(Throttled) as throttled:
            await limiter.run("p", "mallory", wait)
        assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "1"
        others = [asyncio.create_task(limiter.run("p", f"user{n}", wait)) for n in range(3)]  # 1 running, 2 queued
        await settle()
        assert limiter.queued("p") == 5
        with pytest.raises(Overloaded):
            await limiter.run("p", "someone-else", wait)
        assert limiter.refused_queue_full == 2
        release.set()
        await asyncio.gather(*own, *others)

    async def test_a_caller_that_goes_away_while_queued_gives_its_place_back(self) -> None:
        limiter = PauseLimiter(1)
        release = asyncio.Event()

        async def wait() -> None:
            await release.wait()

        running = asyncio.create_task(limiter.run("p", "a", wait))
        queued = asyncio.create_task(limiter.run("p", "b", wait))
        await settle()
        assert limiter.queued("p") == 1
        queued.cancel()
        await settle()
        assert limiter.queued("p") == 0
        release.set()
        await running
        assert limiter.in_flight("p") == 0
        # The slot is free again for the next caller.
        assert await limiter.run("p", "c", wait) is None


    async def test_after_a_refusal_the_same_actor_waits_its_spacing_and_nobody_else_does(self) -> None:
        limiter = PauseLimiter(8, refused_spacing=0.05)
        started: dict[str, float] = {}

        async def refused() -> None:
            raise ActionRefused("wrong_role", "not yours")

        def mark(who: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                started[who] = time.monotonic()
            return run

        with pytest.raises(ActionRefused):
            await limiter.run("p", "mallory", refused)
        refused_at = time.monotonic()
        again = asyncio.create_task(limiter.run("p", "mallory", mark("mallory")))
        await settle()
        assert "mallory" not in started and limiter.queued("p", "mallory") == 1
        await limiter.run("p", "ann", mark("ann"))  # another actor: not spaced, not queued behind mallory
        await again
        assert started["ann"] < started["mallory"]
        assert started["mallory"] - refused_at >= 0.04  # the spacing, less the time taken to note the refusal


class TestRateLimit:
    def test_a_burst_then_the_refill_rate_with_retry_after_and_a_counter(self) -> None:
        clock = FakeClock()
        limiter = ActionRateLimiter(rate_per_second=2.0, burst=5, clock=clock)
        for _ in range(5):
            limiter.take("mallory")
        with pytest.raises(Throttled) as refused:
            limiter.take("mallory")
        assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
        limiter.take("ann")  # another actor's bucket is untouched
        clock.now += 1.0  # two tokens back
        limiter.take("mallory")
        limiter.take("mallory")
        with pytest.raises(Throttled):
            limiter.take("mallory")
        assert limiter.throttled == 2

    def test_throttled_requests_are_summarised_in_the_log_not_logged_one_by_one(self) -> None:
        clock = FakeClock()
        limiter = ActionRateLimiter(rate_per_second=1.0, burst=1, clock=clock)
        limiter.take("mallory")
        with structlog.testing.capture_logs() as logs:
            for _ in range(500):
                with pytest.raises(Throttled):
                    limiter.take("mallory")
            clock.now += 61.0
            limiter.take("mallory")  # refilled
            with pytest.raises(Throttled):
                limiter.take("mallory")
        lines = [e for e in logs if e["event"] == "actions_throttled"]
        assert limiter.throttled == 501
        # One line for the first minute, one for the next, each with the count since the last line.
        assert [e["count"] for e in lines] == [1, 500]

    def test_full_buckets_are_forgotten_so_memory_stays_bounded(self) -> None:
        clock = FakeClock()
        limiter = ActionRateLimiter(rate_per_second=1.0, burst=2, clock=clock, max_actors=10)
        for n in range(10):
            limiter.take(f"user{n}")
        clock.now += 5.0  # every bucket has refilled
        limiter.take("newcomer")
        assert len(limiter._buckets) == 1


FLOOD = 1000
SAMPLES = 31
MIN_SAMPLES = 15


async def raw_post(url: str, path: str, token: str, body: dict[str, Any]) -> int:
    """One POST on its own connection, written by hand: a flood from a script costs the API what it costs,
    and the test's own client (httpx's pool is quadratic in waiting requests) adds next to nothing."""
    where = urlsplit(url)
    assert where.hostname is not None and where.port is not None
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    try:
        writer.write(head.encode() + data)
        await writer.drain()
        status = await reader.readline()
        return int(status.split()[1])
    finally:
        writer.close()


@pytest_asyncio.fixture
async def reviewing(make_harness: HarnessFactory, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    # The API's default limits: what a deployment runs with. A small fleet: its ticks are noise here.
    async with make_harness(agents=20) as harness, api_world(harness, tmp_path / "api") as api:
        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert r.status_code == 201, r.text
        await api.wait_for_state("UNDER_REVIEW")
        yield api


class TestReviewerDuringAFlood:
    async def test_a_reviewers_action_never_waits_behind_the_flood(self, reviewing: ApiWorld) -> None:
        api = reviewing
        p = api.program
        item = f"/v1/pauses/{p}/checklist/access-review"
        body = {"evidence": [evidence_for("access-review", "access-report")]}
        ann = api.client("ann")
        limiter: PauseLimiter = api.app.state.api.limiter
        dave = (await api.client("dave").get("/v1/whoami")).json()["id"]
        reviewer = (await ann.get("/v1/whoami")).json()["id"]
        # What the limiter did, in order: an action queued, its call to the workflow started. How long a
        # reviewer waits on a shared machine is a clock's word; how many of the flood's calls went first
        # is the queue's.
        events: list[tuple[str, str]] = []
        run = limiter.run

        async def noted(pause: str, actor: str, call: Callable[[], Awaitable[Any]]) -> Any:
            async def started() -> Any:
                events.append((actor, "started"))
                return await call()
            events.append((actor, "queued"))
            return await run(pause, actor, started)

        limiter.run = noted  # type: ignore[method-assign]

        async def reviewer_action() -> float:
            started = time.perf_counter()
            r = await ann.post(item, json=body)
            assert r.status_code == 200, r.text  # never 503 busy, never 429: the flood is dave's
            return time.perf_counter() - started

        for _ in range(3):
            await reviewer_action()  # warm: connection, runbook cache
        before = [await reviewer_action() for _ in range(SAMPLES)]

        # Dave holds a role (data-engineer) but not this item's: 1,000 requests at once, as from a script.
        # The rate limit admits a burst of them; those wait in dave's own sub-queue and go to the workflow
        # one at a time, spaced after each refusal; the rest are answered 429 at once.
        flood = [asyncio.create_task(raw_post(api.url, item, api.tokens["dave"], body)) for _ in range(FLOOD)]
        # The queue is caught the moment it fills (the flood drains it soon after): the loop is asked at once.
        async def queued() -> bool:
            return limiter.queued(p, dave) > 0
        await polled(queued, what="dave's sub-queue filled", every=0.001)
        during = []
        flooding = len(events)
        while len(during) < SAMPLES and limiter.queued(p, dave) > 0:
            during.append(await reviewer_action())
        ahead = calls_ahead(events[flooding:], reviewer=reviewer, flood=dave)
        codes = Counter(await asyncio.gather(*flood))
        after = [await reviewer_action() for _ in range(SAMPLES)]
        assert len(during) >= MIN_SAMPLES, f"the flood drained after {len(during)} measurements"

        # Without the flood: before and after it, so a drift over the test (a growing history) cancels out.
        usual, flooded = statistics.median(before + after), statistics.median(during)
        print(f"\nreviewer latency (median): {usual * 1000:.1f} ms without the flood ({len(before + after)} "
              f"actions), {flooded * 1000:.1f} ms during {FLOOD} requests of another user ({len(during)} actions; "
              f"x{flooded / usual:.2f}; slowest {max(during) * 1000:.0f} ms, while the flood's connections were "
              f"accepted); flood answered {dict(codes)}")
        assert set(codes) <= {403, 429} and codes[403] >= 1, codes
        assert limiter.peaks[p] <= api.settings.api.max_updates_in_flight_per_pause
        # Dave has one call in flight at a time (per_actor_in_flight): at most that one started while a
        # reviewer's action waited for its slot; the rest of the flood waited in dave's own queue.
        assert len(ahead) == len(during) and max(ahead) <= limiter.per_actor_in_flight, ahead
        record_result("flood of requests from one user", "a reviewer acts during 1,000 requests", injected=FLOOD,
                      outcome="the reviewer's actions applied, never queued behind the flood",
                      ratio=round(flooded / usual, 2), flood_calls_ahead=max(ahead))


def calls_ahead(events: list[tuple[str, str]], *, reviewer: str, flood: str) -> list[int]:
    """For each of ``reviewer``'s actions, how many of ``flood``'s calls started between the action being
    queued and its own call starting."""
    out: list[int] = []
    waiting: int | None = None
    for actor, what in events:
        if actor == reviewer and what == "queued":
            waiting = 0
        elif actor == reviewer and what == "started" and waiting is not None:
            out.append(waiting)
            waiting = None
        elif actor == flood and what == "started" and waiting is not None:
            waiting += 1
    return out

