"""Body size, the per-pause update limit, and capacity refusals from Temporal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from pausegate.api.errors import Overloaded
from pausegate.api.limiter import PauseLimiter
from tests.api.support import ApiWorld, evidence_for, local


def exhausted() -> RPCError:
    return RPCError(
        "limit on number of concurrent in-flight updates has been reached (10)", RPCStatusCode.RESOURCE_EXHAUSTED, b""
    )


class TestLimiter:
    async def test_keeps_at_most_the_limit_in_flight_and_queues_the_rest(self) -> None:
        limiter = PauseLimiter(3)
        release = asyncio.Event()
        running = 0
        peak = 0

        async def call() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1
            return 1

        # Several actors: one actor alone holds at most half the slots (see the fair-queue tests).
        tasks = [asyncio.create_task(limiter.run("p", f"actor{n % 4}", call)) for n in range(20)]
        while running < 3:
            await asyncio.sleep(0)
        assert limiter.in_flight("p") == 3
        release.set()
        assert sum(await asyncio.gather(*tasks)) == 20
        assert peak == 3 and limiter.peaks["p"] == 3
        assert limiter.in_flight("p") == 0

    async def test_retries_a_capacity_refusal_then_succeeds(self) -> None:
        limiter = PauseLimiter(2, base_delay=0.001)
        attempts = 0

        async def call() -> str:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise exhausted()
            return "done"

        assert await limiter.run("p", "ann", call) == "done"
        assert attempts == 3

    async def test_gives_up_with_overloaded_and_never_retries_other_errors(self) -> None:
        limiter = PauseLimiter(2, attempts=4, base_delay=0.001, max_delay=0.002)
        calls = 0

        async def always_exhausted() -> None:
            nonlocal calls
            calls += 1
            raise exhausted()

        with pytest.raises(Overloaded):
            await limiter.run("p", "ann", always_exhausted)
        assert calls == 4

        async def unavailable() -> None:
            nonlocal calls
            calls += 1
            raise RPCError("down", RPCStatusCode.UNAVAILABLE, b"")

        calls = 0
        with pytest.raises(RPCError):
            await limiter.run("p", "ann", unavailable)
        assert calls == 1


class TestApiLimits:
    async def test_an_oversize_body_is_413_before_anything_reaches_temporal(self, api: ApiWorld) -> None:
        huge = {"program": api.program, "reason": "x" * (2 * 1024 * 1024)}
        r = await api.client("carol").post("/v1/pauses", json=huge)
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"

        async def chunks() -> Any:
            for _ in range(20):
                yield b"x" * 100_000

        chunked = await api.client("carol").post(
            "/v1/pauses", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        missing = await api.client("carol").get(f"/v1/pauses/{api.program}")
        assert missing.status_code == 404 and missing.json()["error"] == "no_pause"

    async def test_a_burst_of_actions_on_one_pause_all_land_within_the_limit(self, api: ApiWorld) -> None:
        p = api.program
        r = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
        assert r.status_code == 201
        await api.wait_for_state("UNDER_REVIEW")
        ann = api.client("ann")
        burst = 30
        responses = await asyncio.gather(
            *(
                ann.post(
                    f"/v1/pauses/{p}/checklist/access-review",
                    json={"evidence": [evidence_for("access-review", "access-report")], "note": f"pass {n}"},
                )
                for n in range(burst)
            )
        )
        assert [x.status_code for x in responses] == [200] * burst
        view = await api.view()
        amendments = [
            e for e in view["timeline"] if e["actor"] == local("ann") and e["action"].startswith("checklist.")
        ]
        assert len(amendments) == burst
        limiter = api_limiter(api)
        assert 1 <= limiter.peaks[p] <= api.settings.api.max_updates_in_flight_per_pause

    async def test_capacity_refusals_that_persist_become_503_with_retry_after(
        self, api: ApiWorld, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pausegate.temporal.pauses as pauses_module

        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert r.status_code == 201
        await api.wait_for_state("UNDER_REVIEW")
        before = await api.view()
        calls = 0

        async def refused(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            raise exhausted()

        monkeypatch.setattr(pauses_module, "send_update", refused)  # what the API's actions send updates with
        api_limiter(api).base_delay = api_limiter(api).max_delay = 0.001
        api_limiter(api).wait_budget = 0.3  # retried until the caller's wait budget is spent
        r = await api.client("ann").post(
            f"/v1/pauses/{api.program}/checklist/access-review",
            json={"evidence": [evidence_for("access-review", "access-report")]},
        )
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"] == "busy"
        assert calls > 1
        assert (await api.view())["checklist"] == before["checklist"]


def api_limiter(api: ApiWorld) -> PauseLimiter:
    limiter: PauseLimiter = api.app.state.api.limiter
    return limiter
