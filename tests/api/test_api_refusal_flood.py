"""Refusals are recorded, but a caller cannot turn them into load: a caller with no role in the program
never reaches its workflow, and one with a role adds at most one signal a minute per action."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from pausegate.api.limits import ActionLimits
from pausegate.api.refusal_log import RefusalEntry, RefusalLog
from pausegate.api.refusals import Coalescer, Refusal
from pausegate.temporal.pauses import pause_handle
from tests.api.support import NARROWED_PLAN, ApiWorld, api_world, evidence_for
from tests.support.fault_report import record_result
from tests.support.harness import Harness
from tests.support.polling import polled

FLOOD = 300


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def refusal(actor: str = "mallory", action: str = "refused.complete_item") -> Refusal:
    return Refusal(actor=actor, roles=("data-engineer",), program="p", action=action, reason="wrong_role: no")


class TestCoalescer:
    async def test_a_minute_of_refusals_is_one_record_now_and_one_with_the_count_when_it_ends(self) -> None:
        clock = FakeClock()
        records: list[tuple[str, str, int, float]] = []

        async def emit(r: Refusal, count: int) -> None:
            records.append((r.actor, r.action, count, clock.now))

        coalescer = Coalescer(emit, name="test", window=60.0, clock=clock)
        # 300 refusals of one actor and action over three minutes, a sweep whenever a window ends
        # (what the background task does), and another actor's one refusal among them.
        for n in range(FLOOD):
            clock.now = n * 0.6
            await coalescer.add(refusal())
            if n == 10:
                await coalescer.add(refusal("ann"))
            due = coalescer.next_due()
            if due is not None and clock.now >= due:
                await coalescer.sweep()
        clock.now = 240.0
        await coalescer.sweep()

        mallory = [r for r in records if r[0] == "mallory"]
        assert sum(r[2] for r in mallory) == FLOOD
        assert mallory[0] == ("mallory", "refused.complete_item", 1, 0.0)  # the first is recorded at once
        # At most one record per window of a minute.
        times = [r[3] for r in mallory]
        assert all(b - a >= 60.0 for a, b in itertools.pairwise(times)), times
        assert len(mallory) <= 4
        assert [r[2] for r in records if r[0] == "ann"] == [1]
        assert coalescer.pending == 0 and coalescer.refusals == FLOOD + 1

    async def test_a_refusal_after_the_window_records_what_it_held_when_no_sweep_ran(self) -> None:
        clock = FakeClock()
        counts: list[int] = []

        async def emit(_: Refusal, count: int) -> None:
            counts.append(count)

        coalescer = Coalescer(emit, name="test", window=60.0, clock=clock)
        for _ in range(5):
            await coalescer.add(refusal())
        clock.now = 61.0
        await coalescer.add(refusal())
        assert counts == [1, 5]  # the first; then the 4 held with the one that came after the window

    async def test_the_background_task_records_pending_counts_when_the_window_ends(self) -> None:
        recorded = asyncio.Event()
        counts: list[int] = []

        async def emit(_: Refusal, count: int) -> None:
            counts.append(count)
            if len(counts) == 2:
                recorded.set()

        coalescer = Coalescer(emit, name="test", window=0.05)
        task = asyncio.create_task(coalescer.run())
        try:
            for _ in range(10):
                await coalescer.add(refusal())
            assert counts == [1]
            await asyncio.wait_for(recorded.wait(), timeout=10)  # the window's end, seen by the task
            assert counts == [1, 9] and coalescer.pending == 0
        finally:
            task.cancel()

    async def test_an_unwritable_record_is_logged_not_raised(self) -> None:
        async def emit(_: Refusal, count: int) -> None:
            raise OSError("disk full")

        coalescer = Coalescer(emit, name="test")
        await coalescer.add(refusal())  # a refusal's 4xx must not become a 500
        assert coalescer.emitted == 1


class TestRefusalLogCounts:
    def test_coalesced_lines_carry_their_count_and_keep_the_chain(self, tmp_path: Path) -> None:
        log = RefusalLog.file(tmp_path / "refusals.jsonl", Ed25519PrivateKey.generate())
        log.append(actor="mallory", roles=[], program="p", action="refused.trigger", reason="x")
        log.append(actor="mallory", roles=[], program="p", action="refused.trigger", reason="x", count=299)
        assert [e.count for e in log.entries()] == [1, 299]
        assert log.problems() == []
        # A line written before counts existed reads as one refusal and still chains.
        line = json.loads((tmp_path / "refusals.jsonl").read_bytes().splitlines()[0])
        del line["count"]
        assert RefusalEntry.model_validate(line).count == 1


async def history_length(handle: WorkflowHandle[Any, Any]) -> int:
    return len((await handle.fetch_history()).events)


async def quiet(handle: WorkflowHandle[Any, Any]) -> int:
    """The pause's history length once the workflow is idle: no activity pending, no workflow task
    pending, the last event a completed workflow task (a condition, not a delay)."""
    async def idle_length() -> int | None:
        description = (await handle.describe()).raw_description
        events = (await handle.fetch_history()).events
        if (not description.pending_activities and not description.HasField("pending_workflow_task")
                and events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED):
            return len(events)
        return None
    return await polled(idle_length, what="the workflow idle", every=0.05)


async def signals_since(handle: WorkflowHandle[Any, Any], start: int) -> int:
    events = (await handle.fetch_history()).events[start:]
    return sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


async def flood(send: Callable[[int], Awaitable[httpx.Response]], n: int = FLOOD, concurrency: int = 30) -> Counter[
        tuple[int, str]]:
    """``n`` requests, ``concurrency`` at a time; how they were answered (status, error code)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[int, str]:
        async with limit:
            r = await send(i)
            return r.status_code, r.json().get("error", "") if r.status_code >= 400 else ""

    return Counter(await asyncio.gather(*(one(i) for i in range(n))))


@pytest_asyncio.fixture
async def reviewing(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    # No rate limit and no spacing in the way: every one of the role holder's requests reaches the
    # workflow's validators, which is what must not turn into history.
    limits = ActionLimits(rate_per_second=10_000.0, burst=10_000, per_actor_queued=1000, refused_spacing=0.0)
    async with api_world(harness, tmp_path / "api", limits=limits) as api:
        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert r.status_code == 201, r.text
        await api.wait_for_state("UNDER_REVIEW")
        yield api


class TestFloods:
    async def test_a_caller_with_no_role_adds_nothing_to_the_pause_and_a_few_lines_to_the_log(
        self, reviewing: ApiWorld
    ) -> None:
        api = reviewing
        p = api.program
        handle = pause_handle(api.harness.client, p)
        olga = api.client(token=api.issuer.token("olga", ["employees", "admin"]))  # admin: no role in a program
        olga_id = (await olga.get("/v1/whoami")).json()["id"]
        digest = {"digest": "0" * 64}
        attempts: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
            ("POST", f"/v1/pauses/{p}/checklist/access-review",
             {"evidence": [evidence_for("access-review", "access-report")]}, None),
            ("POST", f"/v1/pauses/{p}/plan", NARROWED_PLAN, None),
            ("POST", f"/v1/pauses/{p}/plan/reject", {"reason": "no"}, None),
            ("POST", f"/v1/pauses/{p}/approvals", digest, None),
            ("POST", f"/v1/pauses/{p}/waivers", {"all_unconfirmed": True, "reason": "x"}, None),
            ("POST", f"/v1/pauses/{p}/residual-waivers", {"dataset": "telemetry", "reason": "x"}, None),
            ("POST", f"/v1/pauses/{p}/decommission", {"reason": "x"}, None),
            ("POST", f"/v1/pauses/{p}/blocked-steps/retry", {"step": "containment.agents"}, None),
            ("POST", f"/v1/pauses/{p}/blocked-steps/waive", {"step": "containment.agents", "reason": "x"}, None),
            ("POST", "/v1/pauses", {"program": p, "reason": "me too"}, None),
            ("GET", f"/v1/pauses/{p}", None, {"scope": "true"}),
            ("GET", f"/v1/pauses/{p}/report", None, None),
        ]
        before = await quiet(handle)
        view_before = await api.view()

        async def send(i: int) -> httpx.Response:
            method, path, body, params = attempts[i % len(attempts)]
            return await olga.request(method, path, json=body, params=params)

        answers = await flood(send)
        await api.app.state.api.recorder.flush()  # what the end of the minute would record

        assert answers == Counter({(403, "wrong_role"): FLOOD}), answers
        assert await history_length(handle) == before, "a caller with no role reached the workflow"
        after = await api.view()
        assert after["timeline"] == view_before["timeline"]
        lines = [e for e in api.app.state.api.refusals.entries() if e.actor == olga_id]
        per_action = Counter[str]()
        for e in lines:
            per_action[e.action] += e.count
        assert sum(per_action.values()) == FLOOD and len(per_action) == len(attempts)
        # Coalesced: the first refusal of each action at once, the rest of the minute in one more line.
        assert len(lines) <= 2 * len(attempts), [(e.action, e.count) for e in lines]
        assert api.app.state.api.refusals.problems() == []

        # The history count above can see a write: one refusal of a role holder is one signal.
        r = await api.client("dave").post(f"/v1/pauses/{p}/checklist/access-review",
                                          json={"evidence": [evidence_for("access-review", "access-report")]})
        assert r.status_code == 403
        assert await signals_since(handle, before) == 1
        record_result("flood of refused requests", "300 from a caller with no role in the runbook", injected=300,
                      outcome="no history event on the pause; coalesced lines in the signed refusal log")

    async def test_a_role_holder_refused_300_times_adds_one_timeline_entry_and_two_signals(
        self, reviewing: ApiWorld
    ) -> None:
        api = reviewing
        p = api.program
        handle = pause_handle(api.harness.client, p)
        dave = api.client("dave")  # data-engineer: a role in the program, not access-review's
        dave_id = (await dave.get("/v1/whoami")).json()["id"]
        body = {"evidence": [evidence_for("access-review", "access-report")]}
        before = await quiet(handle)
        started = datetime.now(UTC)

        answers = await flood(lambda _: dave.post(f"/v1/pauses/{p}/checklist/access-review", json=body))
        await api.app.state.api.recorder.flush()  # what the end of the minute would record
        ended = datetime.now(UTC)

        assert answers == Counter({(403, "wrong_role"): FLOOD}), answers
        view = await api.view()
        entries = [e for e in view["timeline"] if e["actor"] == dave_id and not e["accepted"]]
        assert sum(e["count"] for e in entries) == FLOOD  # every refusal counted, in the workflow's entries
        minutes = {started.replace(second=0, microsecond=0), ended.replace(second=0, microsecond=0)}
        assert len(entries) <= len(minutes), entries  # one entry a minute
        # Two signals: the first refusal at once, the other 299 when the minute ends. The 300 rejected
        # updates themselves wrote nothing (a validator's rejection leaves no history).
        assert await signals_since(handle, before) == 2
        grown = await quiet(handle) - before
        print(f"\n{FLOOD} refusals of a role holder: {grown} history events, {len(entries)} timeline entries")
        assert grown <= 2 * 4, grown  # a signal: signaled + a workflow task scheduled, started, completed
        record_result("flood of refused requests", "300 from a reviewer on an item not theirs", injected=FLOOD,
                      outcome="one timeline entry per minute with a count; two signals", history_events=grown)


async def test_a_refusal_no_open_pause_can_hold_goes_to_the_log(api: ApiWorld) -> None:
    # No pause yet: the trigger refusal of a role holder (ann) cannot be signalled; it lands in the log.
    r = await api.client("ann").post("/v1/pauses", json={"program": api.program, "reason": "me"})
    assert r.status_code == 403
    ann = (await api.client("ann").get("/v1/whoami")).json()["id"]
    assert [(e.actor, e.action, e.count) for e in api.app.state.api.refusals.entries()] == [
        (ann, "refused.trigger", 1)
    ]
    # Acting where no pause was ever started is not a refusal: 404, nothing recorded.
    r = await api.client("carol").post(f"/v1/pauses/{api.program}/waivers",
                                       json={"all_unconfirmed": True, "reason": "x"})
    assert r.status_code == 404 and r.json()["error"] == "no_pause"
    assert len(list(api.app.state.api.refusals.entries())) == 1
