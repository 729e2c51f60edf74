"""Temporal's refusal for lack of capacity is backpressure: retried under one update id until the caller's
wait budget is spent, then 503 with Retry-After, never a 500 and never an action applied twice.

The end-to-end run (two replicas, a workflow flooded past its limit) is in ``test_replicas``; here the
refusal is raised exactly as the SDK raises it, so the retry path is exercised on every run."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.service import RPCError, RPCStatusCode

from pausegate.api.errors import Overloaded
from pausegate.api.limiter import PauseLimiter, capacity_refusal

EXHAUSTED = RPCError("limit on number of concurrent in-flight updates has been reached (10)",
                     RPCStatusCode.RESOURCE_EXHAUSTED, b"")
ABORTED = RPCError("workflow update was aborted", RPCStatusCode.UNAVAILABLE, b"")
DOWN = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
TASK_FAILED = RPCError("Unable to perform workflow execution update due to Workflow Task in failed state.",
                       RPCStatusCode.FAILED_PRECONDITION, b"")


class Refusing:
    """An update call that Temporal refuses ``times`` times, then applies (once)."""

    def __init__(self, times: int, refusal: RPCError = EXHAUSTED) -> None:
        self.times = times
        self.refusal = refusal
        self.calls = 0
        self.applied = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.refusal
        self.applied += 1
        return "receipt"


class TestBackpressure:
    async def test_capacity_refusals_are_retried_until_the_update_lands_once(self) -> None:
        limiter = PauseLimiter(8, base_delay=0.001, max_delay=0.01)
        call = Refusing(5)
        assert await limiter.run("p", "ann", call) == "receipt"
        assert (call.calls, call.applied, limiter.capacity_retries) == (6, 1, 5)
        assert limiter.in_flight("p") == 0

    async def test_an_update_the_server_aborted_while_shedding_load_is_sent_again(self) -> None:
        limiter = PauseLimiter(8, base_delay=0.001, max_delay=0.01)
        call = Refusing(2, ABORTED)
        assert await limiter.run("p", "ann", call) == "receipt"
        assert call.applied == 1

    async def test_temporal_being_down_is_not_mistaken_for_backpressure(self) -> None:
        assert capacity_refusal(EXHAUSTED) and capacity_refusal(ABORTED) and capacity_refusal(TASK_FAILED)
        assert not capacity_refusal(DOWN)
        limiter = PauseLimiter(8, base_delay=0.001)
        with pytest.raises(RPCError):
            await limiter.run("p", "ann", Refusing(1, DOWN))

    async def test_a_spent_wait_budget_is_a_503_with_retry_after_and_nothing_applied(self) -> None:
        limiter = PauseLimiter(8, wait_budget=0.3, base_delay=0.02, max_delay=0.05)
        call = Refusing(10_000)
        with pytest.raises(Overloaded) as busy:
            await limiter.run("p", "ann", call)
        assert busy.value.status == 503 and busy.value.headers and int(busy.value.headers["Retry-After"]) >= 1
        assert call.applied == 0 and call.calls > 3
        # The budget ends it, counted in attempts: each wait is at least half the base delay, so 0.3 s holds
        # at most 31 of them (a slower machine makes fewer); without the budget all 10,000 would be tried.
        assert call.calls <= 0.3 / (0.5 * 0.02) + 1, call.calls
        assert limiter.in_flight("p") == 0

    async def test_the_budget_covers_waiting_in_the_queue_too(self) -> None:
        limiter = PauseLimiter(1, wait_budget=0.2)
        release = asyncio.Event()

        async def hold() -> str:
            await release.wait()
            return "first"

        first = asyncio.create_task(limiter.run("p", "ann", hold))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await limiter.run("p", "bob", Refusing(0))
        assert limiter.queued("p") == 0  # the caller that gave up left the queue
        release.set()
        assert await first == "first"
