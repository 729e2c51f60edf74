"""Server time to render a big pause's console page, as a ratio to the API's JSON of the same pause.

The pause: 10,000 agents (counts, and the 200 unconfirmed ids the state lists), the worked example's
checklist, the latest 200 timeline entries in the workflow's state and 5,000 older ones archived as
evidence (25 signed documents in a local evidence store, reachable page by page at
``/console/pauses/{program}/timeline/archived``). Its status is built in memory and handed to both
faces in place of the Temporal query (``read_status`` is patched where the console's bridge and the
API's route call it), so the figure compares the two faces' own work, not Temporal's round trip,
which both pay equally.

Measured in-process over httpx's ASGITransport, through the whole app (middleware, the session and
bearer checks, redaction, templates or JSON): the pause page ``GET /console/pauses/{program}`` against
``GET /v1/pauses/{program}``, interleaved, ``--runs`` each after ``--warmup``; the medians are compared.
Target: render / json <= 2. Timeline rows are rendered once per entry's content and kept
(``render.TimelineRows``), as every view of a live pause re-renders the same entries; the warm-up
renders them, and the very first render (templates compiled too) is printed on its own. Also prints
the time of an archived-timeline page (not in the ratio).

Usage: PYTHONPATH=. python bench/bench_console_render.py [--runs 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pausegate.api.routes import pauses as api_pauses
from pausegate.app import create_app
from pausegate.config import ApiSettings, EvidenceSettings, Settings
from pausegate.console import bridge
from pausegate.evidence.layout import timeline_key
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState, TimelineEntry
from pausegate.policy.transitions import new_pause
from tests.support.harness import example_runbook

PROGRAM = "telemetry-bench"
AGENTS = 10_000
KEPT = 200
ARCHIVED = 5_000
PER_DOCUMENT = 200
READER = Actor(id="local:cleo", roles=["ciso", "security-lead"])  # a review role: nothing redacted
TOKEN = "pgt_bench"


class OneReader:
    """Authenticates the one bench token (the console's session re-checks it on every request too)."""

    async def authenticate(self, token: str) -> Actor:
        return READER


def entries(n: int, start: datetime, offset: int) -> list[TimelineEntry]:
    actions = ["checklist.complete", "plan.propose", "agents.halt", "approve", "evidence.sealed"]
    return [TimelineEntry(at=start + timedelta(seconds=offset + i), actor=f"local:person-{(offset + i) % 37}",
                          action=actions[(offset + i) % len(actions)],
                          detail=f"entry {offset + i}: something happened to item-{(offset + i) % 11}",
                          accepted=(offset + i) % 13 != 0)
            for i in range(n)]


def build_status(settings: Settings) -> PauseState:
    runbook = example_runbook(PROGRAM)
    start = datetime.now(UTC) - timedelta(hours=6)
    state = new_pause("bench", PauseRequest(program=PROGRAM, reason="telemetry readable company-wide",
                                            commander=Actor(id="local:carol", roles=["incident-commander"]),
                                            runbook=runbook), start, "bench")
    state.phase = Phase.UNDER_REVIEW
    agents = state.containment.agents
    agents.switch_off, agents.total, agents.attempts = True, AGENTS, 3
    agents.unconfirmed = MAX_LISTED_IDS
    agents.halted = AGENTS - agents.unconfirmed
    agents.unconfirmed_ids = [f"agent-{i:05d}" for i in range(MAX_LISTED_IDS)]
    state.containment.started_at = start
    store = open_evidence_store(settings.evidence)
    for sequence in range(ARCHIVED // PER_DOCUMENT):
        older = entries(PER_DOCUMENT, start, sequence * PER_DOCUMENT)
        state.timeline_archived.append(store.put_json(timeline_key(state.evidence_key, sequence),
                                                      [e.model_dump(mode="json") for e in older]))
    state.timeline = entries(KEPT, start, ARCHIVED)
    return state


async def timed(client: httpx.AsyncClient, url: str, **kwargs: Any) -> tuple[float, int]:
    began = time.perf_counter()
    answer = await client.get(url, **kwargs)
    elapsed = time.perf_counter() - began
    if answer.status_code != 200:
        raise SystemExit(f"{url}: {answer.status_code} {answer.text[:500]}")
    return elapsed, len(answer.content)


async def main(runs: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        root = Path(tmp)
        (root / "runbooks").mkdir()
        runbook = example_runbook(PROGRAM)
        (root / "runbooks" / f"{PROGRAM}.yaml").write_text(
            yaml.safe_dump(runbook.model_dump(mode="json", by_alias=True, exclude_none=True)))
        settings = Settings(
            evidence=EvidenceSettings(directory=root / "evidence"),
            api=ApiSettings(runbooks_dir=root / "runbooks", users_file=root / "users.json",
                            refusal_log=root / "refusals.jsonl"),
        )
        status = build_status(settings)

        async def read_status(client: Any, program: str) -> PauseState:
            return status

        bridge.read_status = read_status  # type: ignore[assignment]
        api_pauses.read_status = read_status  # type: ignore[assignment]
        app = create_app(settings, cast(Any, None), authenticator=OneReader())
        session_id, _ = app.state.console.sessions.open(READER.id, TOKEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            page_url, json_url = f"/console/pauses/{PROGRAM}", f"/v1/pauses/{PROGRAM}"
            cookies = {"pausegate_session": session_id}
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            pages: list[float] = []
            jsons: list[float] = []
            first = 0.0
            for n in range(warmup + runs):
                page_s, page_bytes = await timed(client, page_url, cookies=cookies)
                first = first or page_s
                json_s, json_bytes = await timed(client, json_url, headers=bearer)
                if n >= warmup:
                    pages.append(page_s)
                    jsons.append(json_s)
            archived = [(await timed(client, f"{page_url}/timeline/archived?page={p}", cookies=cookies))[0]
                        for p in (1, 13, 25) for _ in range(5)]
        render, js = statistics.median(pages), statistics.median(jsons)
        print(f"pause: {AGENTS} agents, {KEPT} timeline entries in state, {ARCHIVED} archived "
              f"in {len(status.timeline_archived)} documents; {runs} runs each")
        print(f"console page: median {render * 1000:.1f} ms ({page_bytes / 1024:.0f} KiB)")
        print(f"API JSON:     median {js * 1000:.1f} ms ({json_bytes / 1024:.0f} KiB)")
        print(f"first render (templates compiled, timeline rows rendered, both once): {first * 1000:.1f} ms")
        print(f"archived timeline page: median {statistics.median(archived) * 1000:.1f} ms")
        print(f"render / json = {render / js:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.warmup))
