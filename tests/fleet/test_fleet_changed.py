"""A confirmed batch result says whether the request changed the agent; a replay repeats the first answer
(a drill learns this way which canary agents were halted before it)."""

from __future__ import annotations

from pausegate.models.fleet import AgentResultStatus, BatchRequest
from tests.fleet.support import PROGRAM, FleetUnderTest, ids


class TestChanged:
    async def test_a_halt_says_which_agents_it_stopped_and_its_replay_says_the_same(
        self, fleet: FleetUnderTest
    ) -> None:
        first, second, third = ids(1, 2, 4)
        earlier = BatchRequest(agent_ids=[second], incident_id="earlier", idempotency_key="earlier-halt")
        await fleet.connector.halt(PROGRAM, earlier)
        request = BatchRequest(agent_ids=[first, second, third], incident_id="drill", idempotency_key="drill-halt")
        answer = await fleet.connector.halt(PROGRAM, request)
        assert [(r.agent_id, r.status, r.changed) for r in answer.results] == [
            (first, AgentResultStatus.CONFIRMED, True), (second, AgentResultStatus.CONFIRMED, False),
            (third, AgentResultStatus.CONFIRMED, True)]
        replayed = await fleet.connector.halt(PROGRAM, request)
        assert replayed.replayed and [r.changed for r in replayed.results] == [True, False, True]
