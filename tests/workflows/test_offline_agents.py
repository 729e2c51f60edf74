"""An agent offline during containment is listed, blocks sign-off, and is confirmed when it returns."""

from __future__ import annotations

import httpx
import psycopg

from pausegate.errors import ActionRefused
from pausegate.models.phase import Phase
from pausegate.models.updates import ApproveInput, ProposePlanInput, WaiveAgentsInput
from tests.support.harness import CISO, COMMANDER, Harness, HarnessFactory
from tests.workflows.test_lifecycle import NARROWED_PLAN, complete_review

OFFLINE = "agent-00007"


async def set_online(h: Harness, agent_ids: list[str], online: bool) -> None:
    async with httpx.AsyncClient(base_url=h.fleet.url) as client:
        response = await client.post(f"/admin/programs/{h.program}/{'online' if online else 'offline'}",
                                     json={"agent_ids": agent_ids})
        response.raise_for_status()


def rows_of(h: Harness, agent: str) -> int:
    with psycopg.connect(h.database_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM telemetry.mouse_events WHERE agent_id = %s", (agent,)).fetchone()
    assert row is not None
    return int(row[0])


class TestOfflineAgent:
    async def test_an_offline_agent_blocks_sign_off_until_it_returns_and_confirms(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=50, offline_agents=[OFFLINE]) as h:
            await h.pause()
            status = await h.wait_for(lambda s: s.containment.agents.attempts >= 2, what="a retried halt")
            agents = status.containment.agents
            assert status.phase == Phase.CONTAINING
            assert agents.switch_off and not agents.confirmed
            assert (agents.halted, agents.unconfirmed, agents.unconfirmed_ids) == (49, 1, [OFFLINE])

            # Reviewers may work meanwhile, but nothing can be signed off.
            await complete_review(h)
            await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
            status = await h.status()
            assert status.phase == Phase.CONTAINING and status.approval_digest is not None
            try:
                await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
                raise AssertionError("approval accepted while an agent was unconfirmed")
            except ActionRefused as refusal:
                assert refusal.code == "wrong_state"

            # The agent returns, reads the program switch and halts; the next retry confirms it.
            await set_online(h, [OFFLINE], True)
            status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
            agents = status.containment.agents
            assert agents.confirmed and (agents.halted, agents.unconfirmed, agents.waived) == (50, 0, 0)
            # Back online, the agent reports itself halted and writes nothing, however many ticks pass.
            async with httpx.AsyncClient(base_url=h.fleet.url) as fleet:
                listed = (await fleet.get(f"/v1/programs/{h.program}/agents", params={"page_size": 100})).json()
            assert next(a for a in listed["agents"] if a["id"] == OFFLINE)["state"] == "halted"
            program = h.fleet_state.program(h.program)
            ticks = program.counters.ticks + 5
            await h.eventually(lambda: program.counters.ticks >= ticks, what="5 fleet ticks")
            assert rows_of(h, OFFLINE) == 0

    async def test_the_commander_may_waive_an_unreachable_agent_with_a_reason(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20, offline_agents=[OFFLINE]) as h:
            await h.pause()
            await h.wait_for(lambda s: s.containment.agents.unconfirmed == 1, what="an unconfirmed agent")
            await h.act(WaiveAgentsInput(actor=COMMANDER, agent_ids=[OFFLINE], reason="laptop reported destroyed"))
            status = await h.wait_for_state(Phase.UNDER_REVIEW)
            assert status.containment.agents.confirmed and status.containment.agents.waived == 1
            assert any(e.action == "containment.agents.waiver" and e.actor == "carol" for e in status.timeline)
