"""Reviewer actions through the API, against a bare Temporal update on the same server, in one run.

The real stack: Temporal dev server, PostgreSQL, the reference fleet (a process of its own), the workers
as the embedded stack runs them (the workflows in this process, the urgent and proof steps in their own),
and the HTTP API with local tokens. The
baseline is an update round trip to a workflow that does nothing else (``bench/bare_update.py``).

* sequential: reviewers amend one checklist item N times, one request after another;
* concurrent: 100 reviewers amend on one pause at once (and one person's script sending 100 at once,
  which the API queues behind that person's one update in flight);
* many: 100 reviewers send 1,000 actions across 10 pauses at once;
* flood: a reviewer amends one after another while another person, who holds a role in the program but
  not this item's, sends ``--flood`` requests to the same item at once (answered 403 or 429): the
  reviewer's median amend during the flood against the sequential median (target <= 2x).

Clients honour ``Retry-After`` (429 and 503 are retried after the time the API names; a retried request
keeps its Idempotency-Key, so it is applied once). Every action is then counted in the pauses' timelines
(archived parts included): each must be applied exactly once.

    PYTHONPATH=. python bench/bench_reviewers.py [--sequential 200] [--concurrent 100] [--reviewers 100]
                                    [--pauses 10] [--actions 1000] [--flood 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import yaml
from temporalio.worker import Worker

from bench.bare_update import BareUpdate
from bench.world import COMMANDER, World, fleet_process, new_program, runbook_for, world
from pausegate.app import serve
from pausegate.auth import UserDirectory
from pausegate.config import ApiSettings, Settings
from pausegate.connectors.registry import Connectors
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.temporal.pauses import read_status

ITEM = "access-review"
EVIDENCE = {"name": "access-report", "uri": "https://docs.example.com/access-review", "sha256": "ab" * 32}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bare_update(w: World, n: int) -> list[float]:
    queue = f"bare-{uuid.uuid4().hex[:6]}"
    async with Worker(w.client, task_queue=queue, workflows=[BareUpdate]):
        handle = await w.client.start_workflow(BareUpdate.run, id=f"bare-{queue}", task_queue=queue)
        for i in range(10):  # warm: the sticky cache and the connection
            await handle.execute_update(BareUpdate.touch, i)
        times = []
        for i in range(n):
            t = time.perf_counter()
            await handle.execute_update(BareUpdate.touch, i)
            times.append(time.perf_counter() - t)
        await handle.signal(BareUpdate.finish)
    return times


class Reviewer:
    """One person's HTTP client; retries 429/503 after Retry-After with the same Idempotency-Key."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        self.retries = 0

    async def amend(self, program: str, key: str, note: str) -> tuple[int, float]:
        started = time.perf_counter()
        while True:
            r = await self.http.post(f"/v1/pauses/{program}/checklist/{ITEM}",
                                     json={"evidence": [EVIDENCE], "note": note}, headers={"Idempotency-Key": key})
            if r.status_code in (429, 503) and "Retry-After" in r.headers:
                self.retries += 1
                await asyncio.sleep(float(r.headers["Retry-After"]))
                continue
            return r.status_code, time.perf_counter() - started


def applied(store: Any, status: PauseState) -> Counter[str]:
    """Checklist actions in the timeline and its archived parts, by actor."""
    entries = [e.model_dump(mode="json") for e in status.timeline] + [
        entry for ref in status.timeline_archived for entry in store.read_json(ref.uri.removeprefix("evidence://"))]
    return Counter(e["actor"] for e in entries if e["action"].startswith("checklist."))


async def flooded(url: str, token: str, program: str, n: int) -> Counter[int]:
    """``n`` requests at once, each on a connection of its own, as from a script; their status codes."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                                 limits=limits) as http:
        async def one(i: int) -> int:
            r = await http.post(f"/v1/pauses/{program}/checklist/{ITEM}", json={"evidence": [EVIDENCE]},
                                headers={"Idempotency-Key": f"flood-{i}"})
            return r.status_code
        return Counter(await asyncio.gather(*(one(i) for i in range(n))))


async def main(sequential: int, concurrent: int, reviewers: int, pauses: int, actions: int, flood: int) -> None:
    names = [new_program() for _ in range(pauses)]
    async with world() as w:
        bare = await bare_update(w, sequential)
        databases = {f"db-{p}": w.database(p) for p in names}
        async with fleet_process(names, agents=1000, work=w.work) as fleet:
            base = w.settings(queue="bench-reviewers", databases=databases, fleet_url=fleet.url)
            runbooks = w.work / "runbooks"
            runbooks.mkdir()
            for p in names:
                rb = runbook_for(p, connection=f"db-{p}")
                (runbooks / f"{p}.yaml").write_text(yaml.safe_dump(rb.model_dump(mode="json", by_alias=True,
                                                                                  exclude_none=True)))
            settings: Settings = base.model_copy(update={"api": ApiSettings(
                runbooks_dir=runbooks, users_file=w.work / "users.json", refusal_log=w.work / "refusals.jsonl")})
            connectors = Connectors(settings)
            users = UserDirectory(settings.api.users_file, connectors.evidence_store.signing_key)  # type: ignore[attr-defined]
            commander = users.issue(None, COMMANDER.id, list(COMMANDER.roles))[1]
            tokens = {f"analyst-{i:03d}": users.issue(None, f"analyst-{i:03d}", ["security-analyst"])[1]
                      for i in range(reviewers)}
            flooder = users.issue(None, "flooder", ["data-engineer"])[1]
            async with w.stack_workers(settings, connectors), \
                    serve(settings, w.client, port=0, evidence_store=connectors.evidence_store) as url:
                async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {commander}"},
                                             timeout=60) as carol:
                    for p in names:
                        r = await carol.post("/v1/pauses", json={"program": p, "reason": "bench"})
                        assert r.status_code == 201, r.text
                for p in names:
                    while (await read_status(w.client, p)).phase == Phase.CONTAINING:
                        await asyncio.sleep(0.1)
                people = {name: Reviewer(url, token) for name, token in tokens.items()}
                names_of = sorted(people)
                one = names[0]
                sent: Counter[tuple[str, str]] = Counter()

                async def amend(who: str, program: str, key: str) -> tuple[int, float]:
                    sent[(program, who)] += 1
                    return await people[who].amend(program, key, f"{who} {key}")

                # Each person stays inside the API's per-person limits (a burst of 120, 5 a second after
                # it, one update in flight per pause): the figures are the action path's, not the limiter's.
                for i in range(10):  # warm, as the bare update was
                    await amend(names_of[i % reviewers], one, f"warm-{i}")
                seq = []
                for i in range(sequential):
                    code, took = await amend(names_of[i % reviewers], one, f"seq-{i}")
                    assert code == 200, code
                    seq.append(took)
                # flood: one reviewer, one amend after another, while another person's script floods the item
                flooding = asyncio.create_task(flooded(url, flooder, one, flood))
                during: list[float] = []
                while not flooding.done() and len(during) < sequential:
                    code, took = await amend(names_of[len(during) % reviewers], one, f"flood-{len(during)}")
                    assert code == 200, code
                    during.append(took)
                flood_codes = await flooding
                # concurrent: as many people at once on one pause
                burst = await asyncio.gather(*(amend(names_of[i % reviewers], one, f"burst-{i}")
                                               for i in range(concurrent)))
                burst_failed = sum(1 for code, _ in burst if code != 200)
                # one person's script sending the same number at once: queued behind its one update in flight
                solo = await asyncio.gather(*(amend(names_of[0], names[-1], f"solo-{i}") for i in range(concurrent)))
                solo_failed = sum(1 for code, _ in solo if code != 200)
                # many: each reviewer sends its share, spread across the pauses, all at once
                jobs = []
                for n in range(actions):
                    # reviewer n % reviewers; its successive actions go to successive pauses
                    jobs.append(amend(names_of[n % reviewers], names[(n // reviewers) % pauses], f"many-{n}"))
                started = time.perf_counter()
                many = await asyncio.gather(*jobs)
                many_s = time.perf_counter() - started
                many_failed = sum(1 for code, _ in many if code != 200)
                retries = sum(r.retries for r in people.values())
                wrong = 0
                for p in names:
                    counts = applied(connectors.evidence_store, await read_status(w.client, p))
                    for who in tokens:
                        wrong += counts[f"local:{who}"] != sent[(p, who)]
                for person in people.values():
                    await person.http.aclose()
            await connectors.aclose()

    bare_p50, bare_p99 = pct(bare, 0.5), pct(bare, 0.99)
    seq_p50, seq_p99 = pct(seq, 0.5), pct(seq, 0.99)
    burst_p99 = pct([t for _, t in burst], 0.99)
    many_p99 = pct([t for _, t in many], 0.99)
    solo_p99 = pct([t for _, t in solo], 0.99)
    print(f"bare update ({sequential} sequential): p50 {bare_p50 * 1000:.1f} ms, p99 {bare_p99 * 1000:.1f} ms")
    print(f"sequential amends through the API ({sequential}): p50 {seq_p50 * 1000:.1f} ms, "
          f"p99 {seq_p99 * 1000:.1f} ms; p99 / bare p99 = {seq_p99 / bare_p99:.2f}x")
    print(f"{concurrent} concurrent amends on one pause ({min(concurrent, reviewers)} people): "
          f"p99 {burst_p99 * 1000:.0f} ms, failures {burst_failed}; "
          f"p99 / bare p99 = {burst_p99 / bare_p99:.2f}x")
    print(f"{concurrent} at once from one person on one pause (one in flight, the rest queued): "
          f"p99 {solo_p99 * 1000:.0f} ms, failures {solo_failed}; p99 / bare p99 = {solo_p99 / bare_p99:.2f}x")
    print(f"{actions} actions from {reviewers} reviewers across {pauses} pauses: {many_s:.2f} s, "
          f"p99 {many_p99 * 1000:.0f} ms, failures {many_failed}, Retry-After honoured {retries} times")
    print(f"applied exactly once: {'yes' if wrong == 0 else f'NO ({wrong} reviewer-pause counts differ)'}")
    print(f"median sequential amend / median bare update = {statistics.median(seq) / statistics.median(bare):.2f}x")
    usual, flooded_median = statistics.median(seq), statistics.median(during) if during else float("nan")
    print(f"a reviewer during {flood} requests of another person ({len(during)} amends; flood answered "
          f"{dict(sorted(flood_codes.items()))}): median {flooded_median * 1000:.1f} ms against {usual * 1000:.1f} ms; "
          f"during flood / usual = {flooded_median / usual:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--reviewers", type=int, default=100)
    parser.add_argument("--pauses", type=int, default=10)
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--flood", type=int, default=1000, help="requests at once from another person")
    args = parser.parse_args()
    asyncio.run(main(args.sequential, args.concurrent, args.reviewers, args.pauses, args.actions, args.flood))
