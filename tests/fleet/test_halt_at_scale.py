"""Halting through the fleet activity: bulk calls sized to the fleet's answer time, only the agents not
halted listed, and a large fleet carried in compact arrays."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from activities.fleet import FleetActivities
from pausegate.connectors.fleet import HttpFleet
from pausegate.models.fleet import AgentState
from pausegate.models.steps import HaltAgentsInput
from pausegate.reference.fleet import FaultSettings, FleetSettings, serve_fleet
from pausegate.reference.fleet.fleet import FleetService
from tests.fleet.support import PROGRAM


def halt_input(batch_size: int) -> HaltAgentsInput:
    return HaltAgentsInput(connection="fleet", program=PROGRAM, incident_id="inc-1", reason="leak",
                           batch_size=batch_size, concurrency=2)


class TestHaltBatches:
    async def test_batches_grow_while_the_fleet_answers_quickly_and_every_agent_is_answered(self) -> None:
        # 3,000 offline agents: each needs a per-agent halt (queued until it returns).
        settings = FleetSettings(agents=4000, employees=5, offline_fraction=0.75,
                                 faults=FaultSettings(latency_ms=2, jitter_ms=0))
        async with serve_fleet(settings) as fleet, HttpFleet(fleet.url) as connector:
            result = await ActivityEnvironment().run(FleetActivities(lambda _: connector).halt_agents,
                                                     halt_input(batch_size=50))
            program = fleet.app.state.service.program(PROGRAM)
            assert result.switch_off and result.total == 4000
            assert result.halted == 1000 and result.unconfirmed == 3000
            assert result.switch_off_at == program.switch.changed_at
            # Starting at 50, a fixed size would have taken 60 requests.
            assert program.counters.batches_applied < 30
            queued = sum(1 for a in program.agents.values() if a.queued)
            assert queued == 3000

    async def test_with_the_switch_off_a_fully_online_fleet_needs_no_per_agent_call(self) -> None:
        settings = FleetSettings(agents=20_000, employees=5, faults=FaultSettings(latency_ms=0, jitter_ms=0))
        async with serve_fleet(settings) as fleet, HttpFleet(fleet.url) as connector:
            result = await ActivityEnvironment().run(FleetActivities(lambda _: connector).halt_agents,
                                                     halt_input(batch_size=500))
            program = fleet.app.state.service.program(PROGRAM)
            assert (result.halted, result.unconfirmed, result.total) == (20_000, 0, 20_000)
            assert program.counters.batches_applied == 0
            assert program.count(AgentState.COLLECTING) == 0


class TestCompactAgents:
    def test_a_million_agents_are_counted_listed_and_sampled_without_a_scan_per_request(self) -> None:
        service = FleetService(FleetSettings(agents=1_000_000, employees=50, offline_fraction=0.001))
        program = service.program(PROGRAM)
        assert program.count(AgentState.OFFLINE) == 1000
        page = program.list_agents(page_token=None, page_size=5000, state=AgentState.OFFLINE)
        assert page.total == 1000 and len(page.agents) == 1000 and page.next_page_token is None
        assert all(a.state == AgentState.OFFLINE for a in page.agents)
        last = program.agents["agent-1000000"]
        assert last.employee == "employee_0050" and "agent-1000001" not in program.agents
        assert "agent-7" not in program.agents  # only the canonical spelling names an agent
        # The array's memory, not an object per agent.
        table = program.agents
        assert len(table.online) + len(table.halted) + len(table.queued) == 3_000_000
