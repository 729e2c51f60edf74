"""The watch after a resume: drift pulls the kill switch again within one interval; consent withdrawn
halts that employee's agents; only the runbook's consent roles may withdraw it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import pytest_asyncio

from pausegate.errors import ActionRefused
from pausegate.models.fleet import AgentState, BatchRequest
from pausegate.models.phase import Phase
from pausegate.models.runbook import WatchSpec
from pausegate.models.state import PauseState
from pausegate.models.watch import WatchState, WithdrawConsentInput
from pausegate.reference.fleet.settings import FaultSettings
from pausegate.temporal.watches import read_watch, watch_handle, withdraw_consent
from tests.support.harness import CISO, PRIVACY, Harness, HarnessFactory
from tests.support.histories import replay_and_maybe_record
from tests.support.polling import polled
from tests.workflows.test_lifecycle import wait_for_ticks
from tests.workflows.test_resume_conditions import AGENTS, CONDITIONED_PLAN, rows_of, to_awaiting_approval
from tests.workflows.test_resume_guard import approve
from workflows.watch import watch_actor

INTERVAL = timedelta(seconds=1)


@pytest_asyncio.fixture
async def resumed(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    """The worked example resumed under the conditioned plan, watched every second."""
    async with make_harness(agents=AGENTS) as h:
        h.runbook = h.runbook.model_copy(update={"watch": WatchSpec(period=timedelta(minutes=10), interval=INTERVAL)})
        await to_awaiting_approval(h, CONDITIONED_PLAN)
        await approve(h)
        resumed = await h.wait_for_state(Phase.RESUMED)
        final = await h.client.get_workflow_handle(resumed.pause_id).result()
        assert any(e.action == "watch.started" for e in PauseState.model_validate(final).timeline)
        yield h


async def watch_when(h: Harness, predicate: Callable[[WatchState], bool], what: str) -> WatchState:
    """The watch's first state that ``predicate`` accepts."""
    return await polled(lambda: read_watch(h.client, h.program), until=predicate, what=f"the watch: {what}")


@pytest.mark.slow
class TestWatch:
    async def test_a_dropped_type_collected_again_pulls_the_switch_within_one_interval(self, resumed: Harness) -> None:
        h = resumed
        watched = await watch_when(h, lambda s: s.checks >= 2, "two checks")
        assert watched.status == "watching" and watched.last_check is not None and watched.last_check.holds
        # A misbehaving agent captures typed content again.
        h.fleet.app.state.faults.update(FaultSettings(latency_ms=1, jitter_ms=1, profile_ignored_by=["agent-00001"]))
        before = (await read_watch(h.client, h.program)).checks
        drifted = await watch_when(h, lambda s: s.status != "watching", "drift")
        assert drifted.status == "drifted"
        # Found by the first check that could see the rows (one already running may not have).
        assert drifted.checks - before <= 2
        assert drifted.drift is not None and "typed_content" in drifted.drift

        # A new pause, the watch its commander, contains the program again; people are told.
        status = await h.wait_for(lambda s: s.phase in (Phase.UNDER_REVIEW, Phase.CONTAINING)
                                  and s.commander == watch_actor(h.program), what="the watch's pause")
        assert "conditions no longer hold" in status.reason
        await h.wait_for_state(Phase.UNDER_REVIEW)
        assert not h.fleet_state.program(h.program).switch.enabled
        assert any("watch.drift" in str(m.payload) or "Kill switch pulled again" in m.text
                   for m in h.chat.sink.received("security"))
        watch = watch_handle(h.client, h.program)
        await watch.result()
        await replay_and_maybe_record(watch, "watch-drifted")

    async def test_an_agent_of_an_employee_without_consent_collecting_pulls_the_switch(
        self, resumed: Harness
    ) -> None:
        h = resumed
        await watch_when(h, lambda s: s.checks >= 1, "a check")
        # Someone resumes an agent the plan left halted, behind the workflow's back.
        program = h.fleet_state.program(h.program)
        program.resume(BatchRequest(agent_ids=["agent-00004"], incident_id="manual", idempotency_key="manual"),
                       actor="someone")
        assert program.state_of(program.agents["agent-00004"]) == AgentState.COLLECTING
        drifted = await watch_when(h, lambda s: s.status != "watching", "drift")
        assert drifted.status == "drifted" and drifted.drift is not None
        assert "agents of employees without consent are collecting (agent-00004)" in drifted.drift
        await h.wait_for(lambda s: s.commander == watch_actor(h.program) and s.phase != Phase.RESUMED,
                         what="the watch's pause")
        await h.eventually(lambda: program.state_of(program.agents["agent-00004"]) == AgentState.HALTED,
                           what="the agent halted again")

    async def test_consent_withdrawn_during_the_watch_halts_that_employees_agents(self, resumed: Harness) -> None:
        h = resumed
        program = h.fleet_state.program(h.program)
        mine = ["agent-00001", "agent-00006"]  # employee_0001's agents
        assert all(program.state_of(program.agents[a]) == AgentState.COLLECTING for a in mine)

        with pytest.raises(ActionRefused, match="withdrawing consent during the watch is for roles privacy-officer"):
            await withdraw_consent(h.client, h.program, WithdrawConsentInput(
                actor=CISO, employee="employee_0001", reason="asked by the employee"))
        assert all(program.state_of(program.agents[a]) == AgentState.COLLECTING for a in mine)

        receipt = await withdraw_consent(h.client, h.program, WithdrawConsentInput(
            actor=PRIVACY, employee="employee_0001", reason="asked by the employee"))
        assert "2 agents halted" in receipt.message
        assert all(program.state_of(program.agents[a]) == AgentState.HALTED for a in mine)
        state = await read_watch(h.client, h.program)
        assert state.withdrawn == ["employee_0001"] and state.withdrawals[0].by == PRIVACY.id

        # Nothing of theirs is written over later ticks, and the watch's checks still hold.
        checks = state.checks
        halted_at = state.withdrawals[0].at
        await wait_for_ticks(h, 10)
        assert rows_of(h.database_dsn, "employee_0001", halted_at) == 0
        assert rows_of(h.database_dsn, "employee_0002", halted_at) > 0
        later = await watch_when(h, lambda s: s.checks > checks + 1, "later checks")
        assert later.status == "watching" and later.last_check is not None and later.last_check.holds
        await replay_and_maybe_record(watch_handle(h.client, h.program), "watch-consent-withdrawn")
