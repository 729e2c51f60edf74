"""A reviewer storm: 100 concurrent actions on one pause, duplicates included, across continue-as-new."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client

from pausegate.models.state import PauseState
from tests.api.support import api_world, evidence_for, local
from tests.support.harness import FAST_TUNING, Harness, pause_harness

DISTINCT = 50  # each sent twice with the same Idempotency-Key: 100 requests in all
TUNING = FAST_TUNING.model_copy(update={"continue_as_new_after_updates": 15})


class TestReviewerStorm:
    async def test_every_action_lands_once_and_no_user_sees_a_failure(
        self, temporal_client: Client, postgres: tuple[str, Path], tmp_path: Path
    ) -> None:
        dsn, pglog = postgres
        async with pause_harness(temporal_client, dsn, pglog, tmp_path, agents=20, tuning=TUNING) as h, \
                api_world(h, tmp_path / "api") as api:
            r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
            assert r.status_code == 201
            await api.wait_for_state("UNDER_REVIEW")
            ann = api.client("ann")

            async def amend(n: int) -> int:
                response = await ann.post(
                    f"/v1/pauses/{api.program}/checklist/access-review",
                    json={"evidence": [evidence_for("access-review", "access-report")], "note": f"pass {n}"},
                    headers={"Idempotency-Key": f"storm-{n}"},
                )
                return response.status_code

            codes = await asyncio.gather(*(amend(n % DISTINCT) for n in range(2 * DISTINCT)))
            assert codes == [200] * (2 * DISTINCT)

            status = await h.status()
            assert status.run_count > 1, "the storm crossed at least one continue-as-new"
            assert amendments(h, status) == DISTINCT  # each action applied exactly once
            limiter = api.app.state.api.limiter
            assert limiter.peaks[api.program] <= api.settings.api.max_updates_in_flight_per_pause

            # A duplicate arriving later, in a later run, is still not applied again.
            assert await amend(0) == 200
            assert amendments(h, await h.status()) == DISTINCT


def amendments(h: Harness, status: PauseState) -> int:
    """Checklist actions by ann, in the timeline and in its archived parts."""
    entries = [e.model_dump(mode="json") for e in status.timeline] + [
        entry
        for ref in status.timeline_archived
        for entry in h.connectors.evidence_store.read_json(ref.uri.removeprefix("evidence://"))
    ]
    return sum(1 for e in entries if e["actor"] == local("ann") and e["action"].startswith("checklist."))
