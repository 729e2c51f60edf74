"""A review that goes on for weeks keeps each run's history bounded (continue-as-new carries the state)."""

from __future__ import annotations

from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.phase import Phase
from pausegate.models.updates import CompleteItemInput
from pausegate.temporal.ids import pause_id
from tests.support.harness import ANALYST, FAST_TUNING, Harness, HarnessFactory

AMENDMENTS = 60
TUNING = FAST_TUNING.model_copy(update={"continue_as_new_after_updates": 15, "timeline_keep": 20})


async def run_histories(h: Harness) -> list[int]:
    """History length of every run of the pause, oldest first."""
    lengths = []
    async for execution in h.client.list_workflows(f"WorkflowId = '{pause_id(h.client, h.program)}'"):
        history = await h.client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        lengths.append((execution.start_time, len(history.events)))
    return [n for _, n in sorted(lengths)]


class TestLongReview:
    async def test_history_stays_bounded_across_many_review_actions(self, make_harness: HarnessFactory) -> None:
        async with make_harness(agents=20, tuning=TUNING) as h:
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
            for n in range(AMENDMENTS):
                await h.act(CompleteItemInput(
                    actor=ANALYST, item_id="access-review",
                    evidence=[EvidenceAttachment(name="access-report", uri=f"https://docs.example.com/v{n}")],
                ))
            status = await h.wait_for(lambda s: s.run_count >= AMENDMENTS // 15, what="continued runs")

            # The state survived every continue-as-new.
            item = next(i for i in status.checklist if i.id == "access-review")
            assert item.completed_by == "ann" and item.evidence[0].uri == f"https://docs.example.com/v{AMENDMENTS - 1}"
            assert status.phase == Phase.UNDER_REVIEW
            assert status.containment.agents.confirmed
            # Older timeline entries moved to evidence; what stays in state is bounded.
            assert len(status.timeline) <= TUNING.timeline_keep + 20
            assert status.timeline_archived, "older timeline entries were archived"
            archived = sum(len(h.connectors.evidence_store.read_json(ref.uri.removeprefix("evidence://")))
                           for ref in status.timeline_archived)
            assert archived + len(status.timeline) >= AMENDMENTS

            lengths = await run_histories(h)
            assert len(lengths) == status.run_count
            assert max(lengths) < 200, lengths
