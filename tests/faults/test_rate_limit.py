"""A pause on a namespace with a low request rate (``frontend.namespaceRPS``), which production namespaces
have and the dev server does not: the pause still contains, RESOURCE_EXHAUSTED is met with backoff, and no
action is lost or applied twice.

Who backs off where: the Temporal client (sdk-core) retries a refusal for rate with backoff itself; at the
rates here every refusal the server counted was absorbed there, so the API saw slow calls, not errors. A
refusal that gets past those retries reaches the API: an update is retried under its one update id
(``pausegate.api.capacity``; ``tests/api/test_api_backpressure.py``), anything else is answered 503 with
Retry-After and a detail naming the lack of capacity, and logged (``temporal_busy``, below). The people
here use the CLI's own client (``PausegateClient``), which waits as Retry-After asks and sends each action
under one Idempotency-Key however often it retries.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from temporalio.service import RPCError, RPCStatusCode

from pausegate.api.handlers import answer_of
from pausegate.cli.api_client import PausegateClient
from tests.api.support import ApiWorld, api_world, evidence_for, local
from tests.faults.limited_server import NAMESPACE_BURST_RATIO, NAMESPACE_RPS, limited_server
from tests.faults.support import fleet_effects
from tests.support.fault_report import record_result
from tests.support.harness import pause_harness
from tests.support.polling import polled

RPS = 8  # requests a second for the whole namespace: worker, API and all
AGENTS = 20
BURST = 16  # reviewer actions sent at once


class Person:
    """The CLI's client for one user, counting the waits the API asked for."""

    def __init__(self, api: ApiWorld, who: str) -> None:
        self.waits: list[float] = []
        self.client = PausegateClient(api.url, api.tokens[who], retries=12, retry_delay=0.2, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


async def view(api: ApiWorld, person: Person) -> dict[str, Any]:
    reply = await asyncio.to_thread(person.client.status, api.program)
    return dict(reply.json)


async def until_view(api: ApiWorld, person: Person, check: Any, what: str) -> dict[str, Any]:
    return await polled(lambda: view(api, person), until=check, what=what, every=0.3)


@pytest.mark.slow
async def test_a_low_namespace_rate_is_met_with_backoff_and_loses_or_repeats_nothing(
    postgres: tuple[str, Path], tmp_path: Path
) -> None:
    dsn, pglog = postgres
    async with limited_server({NAMESPACE_RPS: RPS, NAMESPACE_BURST_RATIO: 1}) as server, \
            pause_harness(server.client, dsn, pglog, tmp_path, agents=AGENTS) as h, \
            api_world(h, tmp_path / "api") as api:
        carol = Person(api, "carol")
        reviewers = [Person(api, "ann") for _ in range(BURST)]
        with capture_logs() as logs:
            await asyncio.to_thread(carol.client.trigger, api.program, "telemetry readable company-wide")
            await until_view(api, carol, lambda v: v["state"] == "UNDER_REVIEW", "containment")

            async def amend(n: int, person: Person) -> str:
                reply = await asyncio.to_thread(
                    person.client.complete, api.program, "access-review",
                    [evidence_for("access-review", "access-report")], f"pass {n}")
                return str(reply.json["message"])

            # Views from everyone at once, beside the actions: reads spend the same namespace budget.
            results = await asyncio.gather(*(amend(n, p) for n, p in enumerate(reviewers)),
                                           *(view(api, carol) for _ in range(BURST)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"an action or a view gave up: {failures[:3]}"

        final = await until_view(api, carol, lambda v: True, "a last view")
        amended = [e for e in final["timeline"] if e["actor"] == local("ann") and e["action"].startswith("checklist.")]
        # Each action applied once: as many entries as actions, none of them twice.
        assert len(amended) == BURST, f"{len(amended)} amendments for {BURST} actions"
        assert final["state"] == "UNDER_REVIEW"
        assert final["containment"]["agents"]["confirmed"] and final["containment"]["access_verified_at"]
        effects = fleet_effects(h)
        assert effects.switch_changes == 1 and effects.collecting == 0 and effects.max_halts_per_agent <= 1

        # The limit was met (the server counts its refusals), and answered by backing off, not by a failure
        # (no action or view above gave up). Figures: how often the CLI's client was asked to wait (a 429 of
        # the API's own per-caller limit, or a 503), and how often the API met a refusal itself.
        refused = await server.refused_for_rate()
        assert refused > 0, "the namespace's rate limit was never met: the test tested nothing"
        waits = sum(len(p.waits) for p in [carol, *reviewers])
        busy = [e for e in logs if e["event"] in ("temporal_busy", "update_capacity_retry")]
        record_result(
            "engine limits: namespace request rate", f"{RPS} requests/s for the namespace; {BURST} reviewer "
            f"actions and {BURST} views at once", injected=refused,
            outcome=f"contained; {BURST} actions each applied once; switch off once, each agent halted at most "
                    "once; every refusal retried with backoff",
            client_waits=waits, api_busy=len(busy),
        )


def test_a_refusal_for_rate_that_reaches_the_api_is_503_naming_the_lack_of_capacity() -> None:
    exhausted = RPCError("namespace rate limit exceeded", RPCStatusCode.RESOURCE_EXHAUSTED, b"")
    with capture_logs() as logs:
        answer = answer_of(exhausted)
    assert answer is not None and answer.status == 503 and answer.headers == {"Retry-After": "2"}
    assert "lack of capacity" in answer.detail and "nothing was applied" in answer.detail
    assert [e["event"] for e in logs] == ["temporal_busy"]
    unreachable = answer_of(RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""))
    assert unreachable is not None and "did not answer" in unreachable.detail
    record_result("engine limits: namespace request rate", "a refusal past the Temporal client's retries",
                  injected=1, outcome="503 with Retry-After naming the lack of capacity; logged temporal_busy")
