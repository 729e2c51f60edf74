"""A pause on a namespace whose history limits are far below the defaults: it continues as new before them
in every phase (containing with a flood of refusals, review, approval, the watch), and no run of it or of
its watch is ever terminated by the server.

The server suggests continue-as-new at ``SUGGEST`` events (or bytes) and terminates a run at ``ERROR``;
the pause's own thresholds (``Tuning``) stay at their defaults, far above, so what is tested is that the
workflows heed the server's suggestion, whatever the namespace's limits are (a pause that continued as new
at all shows the lowered limits took effect: the server ignores a key it does not know). While containing,
the halt loop used to look at its history only between two retries, and a flood of refusals in between
carried a run to about three times the suggestion (432 events against 150): with ``ERROR`` at 400 that run
would have been terminated.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.phase import Phase
from pausegate.models.runbook import WatchSpec
from pausegate.models.state import PauseState, TimelineEntry
from pausegate.models.updates import CompleteItemInput, ProposePlanInput, RefusalInput
from pausegate.temporal.ids import pause_id
from pausegate.temporal.pauses import pause_handle
from pausegate.temporal.watches import read_watch
from tests.faults.limited_server import (
    HISTORY_COUNT_ERROR,
    HISTORY_COUNT_SUGGEST,
    HISTORY_COUNT_WARN,
    HISTORY_SIZE_ERROR,
    HISTORY_SIZE_SUGGEST,
    HISTORY_SIZE_WARN,
    RunHistory,
    limited_server,
    run_histories,
)
from tests.support.fault_report import record_result
from tests.support.harness import ANALYST, COMMANDER, Harness, pause_harness
from tests.support.polling import polled
from tests.workflows.test_lifecycle import complete_review
from tests.workflows.test_offline_agents import set_online
from tests.workflows.test_resume_conditions import CONDITIONED_PLAN
from tests.workflows.test_resume_guard import approve
from workflows.pause import PauseWorkflow
from workflows.watch_ids import watch_workflow_id

SUGGEST, ERROR = 150, 400  # events
SIZE_SUGGEST, SIZE_ERROR = 128 * 1024, 512 * 1024  # bytes
LIMITS = {
    HISTORY_COUNT_SUGGEST: SUGGEST, HISTORY_COUNT_WARN: SUGGEST, HISTORY_COUNT_ERROR: ERROR,
    HISTORY_SIZE_SUGGEST: SIZE_SUGGEST, HISTORY_SIZE_WARN: SIZE_SUGGEST, HISTORY_SIZE_ERROR: SIZE_ERROR,
}
AGENTS = 10
OFFLINE = "agent-00003"
REFUSALS = 400  # per phase: each one a signal, so an event, in history
AMENDMENTS = 60
CLOSED_AS_EXPECTED = {"RUNNING", "CONTINUED_AS_NEW", "COMPLETED"}


async def refuse(h: Harness, n: int, action: str) -> None:
    """``n`` refusals signalled one by one (the API coalesces them; this is the worst case it spares)."""
    handle = pause_handle(h.client, h.program)
    for i in range(n):
        await handle.signal(PauseWorkflow.record_refusal,
                            RefusalInput(actor="mallory", action=action, reason=f"no role in the program ({i})"))


def refusals_recorded(h: Harness, status: PauseState, action: str) -> int:
    entries: list[TimelineEntry] = list(status.timeline)
    for ref in status.timeline_archived:
        raw = h.connectors.evidence_store.read_json(ref.uri.removeprefix("evidence://"))
        entries += [TimelineEntry.model_validate(e) for e in raw]
    return sum(e.count for e in entries if not e.accepted and e.action == action)


def within_limits(runs: list[RunHistory], what: str) -> None:
    for run in runs:
        assert run.status in CLOSED_AS_EXPECTED, f"a run of the {what} ended {run.status}: {runs}"
        assert run.events < ERROR and run.size < SIZE_ERROR, f"a run of the {what} passed a limit: {run}"


@pytest.mark.slow
async def test_the_pause_and_its_watch_continue_as_new_before_small_history_limits(
    postgres: tuple[str, Path], tmp_path: Path
) -> None:
    dsn, pglog = postgres
    async with limited_server(LIMITS) as server, \
            pause_harness(server.client, dsn, pglog, tmp_path, agents=AGENTS, offline_agents=[OFFLINE]) as h:
        h.runbook = h.runbook.model_copy(update={
            "watch": WatchSpec(period=timedelta(minutes=10), interval=timedelta(seconds=1))})
        await h.pause()
        # Containing, an agent offline: the halt is retried while refusals pour in. While a step of
        # containment is in flight no run can continue as new (what arrives meanwhile is bounded by the API's
        # coalescing of refusals, not by the workflow); once the proving steps are done only the halt is left.
        await h.wait_for(lambda s: s.containment.agents.attempts >= 1 and s.containment.copies is not None
                         and s.containment.exposure is not None, what="only the halt left")
        await refuse(h, REFUSALS, "refused.approve")
        containing = await h.wait_for(lambda s: s.run_count >= 2, what="continue-as-new while containing")
        assert containing.phase == Phase.CONTAINING

        await set_online(h, [OFFLINE], True)
        await h.wait_for_state(Phase.UNDER_REVIEW)
        before = (await h.status()).run_count
        for n in range(AMENDMENTS):
            await h.act(CompleteItemInput(actor=ANALYST, item_id="access-review", evidence=[
                EvidenceAttachment(name="access-report", uri=f"https://docs.example.com/v{n}")]))
        await refuse(h, REFUSALS // 2, "refused.complete_item")
        reviewing = await h.wait_for(lambda s: s.run_count > before, what="continue-as-new in review")
        assert reviewing.phase == Phase.UNDER_REVIEW

        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=CONDITIONED_PLAN))
        await h.wait_for_state(Phase.AWAITING_APPROVAL)
        before = (await h.status()).run_count
        await refuse(h, REFUSALS // 2, "refused.approve_plan")
        awaiting = await h.wait_for(lambda s: s.run_count > before, what="continue-as-new awaiting approval")
        assert awaiting.phase == Phase.AWAITING_APPROVAL

        await approve(h)
        final = PauseState.model_validate(await pause_handle(h.client, h.program).result())
        assert final.phase == Phase.RESUMED
        await until_watch_continued(h)

        # Every refusal is on the record (counted, coalesced by minute), none lost across the runs.
        assert refusals_recorded(h, final, "refused.approve") == REFUSALS
        assert refusals_recorded(h, final, "refused.complete_item") == REFUSALS // 2
        assert refusals_recorded(h, final, "refused.approve_plan") == REFUSALS // 2
        pause_runs = await run_histories(h.client, pause_id(h.client, h.program))
        watch_runs = await run_histories(h.client, watch_workflow_id(pause_id(h.client, h.program)))
        within_limits(pause_runs, "pause")
        within_limits(watch_runs, "watch")
        assert len(pause_runs) == final.run_count and len(watch_runs) >= 2
        record_result(
            "engine limits: small history", f"suggest at {SUGGEST} events / {SIZE_SUGGEST // 1024} KB, "
            f"terminate at {ERROR} / {SIZE_ERROR // 1024} KB; {REFUSALS * 2} refusals in three phases",
            injected=REFUSALS * 2,
            outcome=f"RESUMED; pause {len(pause_runs)} runs, watch {len(watch_runs)} runs, none terminated; "
                    "every refusal counted",
            max_events=max(r.events for r in pause_runs + watch_runs),
            max_kb=round(max(r.size for r in pause_runs + watch_runs) / 1024),
        )


async def until_watch_continued(h: Harness) -> None:
    """The watch checks every second; poll until one of its runs has continued as new."""
    await polled(lambda: read_watch(h.client, h.program), until=lambda state: state.run_count >= 2,
                 what="the watch's continue-as-new", every=0.2)
