"""The fleet contract through the HTTP connector, in-process and over a real socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pausegate.connectors.fleet import HttpFleet
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.fleet import AgentResultStatus, AgentState, AuditRecord, BatchRequest, SwitchRequest
from pausegate.reference.fleet import FaultSettings
from tests.fleet.support import OFFLINE, PROGRAM, FleetUnderTest, ids, open_fleet, small_fleet

OFF = SwitchRequest(enabled=False, incident_id="INC-7", reason="keystroke data leaked")
ON = SwitchRequest(enabled=True, incident_id="INC-7", reason="review signed off")


def batch(agent_ids: list[str], key: str) -> BatchRequest:
    return BatchRequest(agent_ids=agent_ids, incident_id="INC-7", idempotency_key=key)


async def audit(fleet: FleetUnderTest, start: datetime, end: datetime | None = None) -> list[AuditRecord]:
    end = end or datetime.now(UTC) + timedelta(seconds=1)
    return [r async for r in fleet.connector.audit_trail(PROGRAM, start, end)]


class TestListing:
    async def test_pages_cover_every_agent_once_in_order(self, fleet: FleetUnderTest) -> None:
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            page = await fleet.connector.list_agents(PROGRAM, page_token=token, page_size=7)
            assert page.total == 50
            seen += [a.id for a in page.agents]
            pages += 1
            token = page.next_page_token
            if token is None:
                break
        assert seen == ids(*range(1, 51))
        assert pages == 8

    async def test_agents_belong_to_the_examples_employees(self, fleet: FleetUnderTest) -> None:
        page = await fleet.connector.list_agents(PROGRAM, page_size=6)
        assert [a.employee for a in page.agents] == [f"employee_000{n}" for n in (1, 2, 3, 4, 5, 1)]

    async def test_the_state_filter_pages_and_counts_only_that_state(self, fleet: FleetUnderTest) -> None:
        page = await fleet.connector.list_agents(PROGRAM, state=AgentState.OFFLINE, page_size=1)
        assert (page.total, [a.id for a in page.agents]) == (2, OFFLINE[:1])
        last = await fleet.connector.list_agents(
            PROGRAM, state=AgentState.OFFLINE, page_size=1, page_token=page.next_page_token
        )
        assert ([a.id for a in last.agents], last.next_page_token) == (OFFLINE[1:], None)
        collecting = await fleet.connector.list_agents(PROGRAM, state=AgentState.COLLECTING)
        assert collecting.total == len(collecting.agents) == 48

    async def test_a_forged_page_token_is_rejected(self, fleet: FleetUnderTest) -> None:
        with pytest.raises(TargetRejectedError, match="page token"):
            await fleet.connector.list_agents(PROGRAM, page_token="999999")

    async def test_an_unknown_program_is_rejected(self, fleet: FleetUnderTest) -> None:
        with pytest.raises(TargetRejectedError, match=r"404.*no program 'payroll'"):
            await fleet.connector.get_switch("payroll")


class TestSwitch:
    async def test_switching_off_halts_every_online_agent_at_once(self, fleet: FleetUnderTest) -> None:
        assert (await fleet.connector.get_switch(PROGRAM)).enabled
        state = await fleet.connector.set_switch(PROGRAM, OFF)
        assert (state.enabled, state.incident_id, state.reason) == (False, "INC-7", "keystroke data leaked")
        assert (await fleet.connector.list_agents(PROGRAM, state=AgentState.COLLECTING)).total == 0
        assert (await fleet.connector.list_agents(PROGRAM, state=AgentState.HALTED)).total == 48

    async def test_setting_the_switch_again_changes_nothing(self, fleet: FleetUnderTest) -> None:
        first = await fleet.connector.set_switch(PROGRAM, OFF)
        again = await fleet.connector.set_switch(PROGRAM, OFF.model_copy(update={"incident_id": "INC-8"}))
        assert again == first
        assert (await fleet.stats())["switch_changes"] == 1


class TestHalt:
    async def test_each_agent_is_confirmed_pending_or_not_found(self, fleet: FleetUnderTest) -> None:
        result = await fleet.connector.halt(PROGRAM, batch([*ids(1, 3), "agent-99999"], "h1"))
        assert [(r.agent_id, r.status, r.state) for r in result.results] == [
            ("agent-00001", AgentResultStatus.CONFIRMED, AgentState.HALTED),
            ("agent-00003", AgentResultStatus.PENDING, AgentState.OFFLINE),
            ("agent-99999", AgentResultStatus.NOT_FOUND, None),
        ]
        assert not result.replayed

    async def test_a_replayed_key_returns_the_stored_answer_and_applies_nothing(
        self, fleet: FleetUnderTest
    ) -> None:
        first = await fleet.connector.halt(PROGRAM, batch(ids(1, 2), "h1"))
        await fleet.connector.resume(PROGRAM, batch(ids(1), "r1"))
        replay = await fleet.connector.halt(PROGRAM, batch(ids(1, 2), "h1"))

        assert replay.results == first.results
        assert replay.replayed
        effects = await fleet.effects(ids(1, 2))
        # agent 1 was resumed after the first halt: a re-applied halt would have stopped it again
        assert (effects["agent-00001"]["halts"], effects["agent-00001"]["state"]) == (1, "collecting")
        assert effects["agent-00002"]["halts"] == 1
        stats = await fleet.stats()
        assert (stats["batches_applied"], stats["batches_replayed"]) == (2, 1)

    async def test_halting_a_halted_agent_under_a_new_key_has_no_effect(self, fleet: FleetUnderTest) -> None:
        await fleet.connector.halt(PROGRAM, batch(ids(4), "h1"))
        again = await fleet.connector.halt(PROGRAM, batch(ids(4), "h2"))
        assert again.results[0].status is AgentResultStatus.CONFIRMED
        assert (await fleet.effects(ids(4)))["agent-00004"]["halts"] == 1

    async def test_a_key_reused_for_another_request_is_rejected(self, fleet: FleetUnderTest) -> None:
        await fleet.connector.halt(PROGRAM, batch(ids(1), "h1"))
        with pytest.raises(TargetRejectedError, match=r"422.*already used"):
            await fleet.connector.halt(PROGRAM, batch(ids(2), "h1"))
        assert (await fleet.effects(ids(2)))["agent-00002"]["halts"] == 0


class TestResume:
    async def test_resume_restarts_halted_agents(self, fleet: FleetUnderTest) -> None:
        await fleet.connector.halt(PROGRAM, batch(ids(5, 6), "h1"))
        result = await fleet.connector.resume(PROGRAM, batch(ids(5, 6), "r1"))
        assert {(r.status, r.state) for r in result.results} == {
            (AgentResultStatus.CONFIRMED, AgentState.COLLECTING)
        }
        assert [e["resumes"] for e in (await fleet.effects(ids(5, 6))).values()] == [1, 1]

    async def test_resume_is_refused_while_the_switch_is_off(self, fleet: FleetUnderTest) -> None:
        await fleet.connector.set_switch(PROGRAM, OFF)
        await fleet.connector.halt(PROGRAM, batch(ids(5), "h1"))
        with pytest.raises(TargetRejectedError, match=r"409.*switch is disabled"):
            await fleet.connector.resume(PROGRAM, batch(ids(5), "r1"))
        assert (await fleet.effects(ids(5)))["agent-00005"]["resumes"] == 0
        # the refusal is not remembered: once the switch is on, the same key works
        await fleet.connector.set_switch(PROGRAM, ON)
        result = await fleet.connector.resume(PROGRAM, batch(ids(5), "r1"))
        assert result.results[0].state is AgentState.COLLECTING


class TestOfflineAgents:
    async def test_an_agent_returning_to_a_disabled_switch_halts_itself(self, fleet: FleetUnderTest) -> None:
        await fleet.connector.set_switch(PROGRAM, OFF)
        assert (await fleet.online(OFFLINE[:1]))[0]["state"] == "halted"
        page = await fleet.connector.list_agents(PROGRAM, state=AgentState.HALTED, page_size=50)
        assert OFFLINE[0] in {a.id for a in page.agents}
        trail = await audit(fleet, datetime.now(UTC) - timedelta(minutes=1))
        assert ("agent.switch_halt", OFFLINE[0]) in {(r.action, r.agent_id) for r in trail}

    async def test_a_halt_sent_while_offline_is_applied_on_return(self, fleet: FleetUnderTest) -> None:
        result = await fleet.connector.halt(PROGRAM, batch(OFFLINE, "h1"))
        assert {r.status for r in result.results} == {AgentResultStatus.PENDING}
        assert (await fleet.effects(OFFLINE))[OFFLINE[0]]["queued"] == "halt"
        await fleet.online(OFFLINE)
        effects = await fleet.effects(OFFLINE)
        assert [(e["state"], e["halts"], e["queued"]) for e in effects.values()] == [("halted", 1, None)] * 2
        # the switch stayed on: these agents halted because of their own queued command
        assert (await fleet.connector.get_switch(PROGRAM)).enabled

    async def test_an_agent_going_offline_is_listed_offline_with_its_last_sighting(
        self, fleet: FleetUnderTest
    ) -> None:
        before = datetime.now(UTC)
        await fleet.offline(ids(9))
        page = await fleet.connector.list_agents(PROGRAM, state=AgentState.OFFLINE)
        agent = {a.id: a for a in page.agents}["agent-00009"]
        assert agent.last_seen is not None and agent.last_seen >= before


class TestAuditTrail:
    async def test_the_window_holds_exactly_the_events_inside_it(self, fleet: FleetUnderTest) -> None:
        t0 = datetime.now(UTC)
        await fleet.offline(ids(10))
        t1 = datetime.now(UTC)
        await fleet.connector.set_switch(PROGRAM, OFF)
        await fleet.connector.halt(PROGRAM, batch(ids(11, 12), "h1"))
        await fleet.online(ids(10))
        t2 = datetime.now(UTC)

        early = await audit(fleet, t0, t1)
        late = await audit(fleet, t1, t2)
        assert [(r.action, r.agent_id) for r in early] == [("agent.offline", "agent-00010")]
        assert [(r.action, r.agent_id) for r in late] == [
            ("switch.disable", None),
            ("agent.halt", "agent-00011"),
            ("agent.halt", "agent-00012"),
            ("batch.halt", None),
            ("agent.online", "agent-00010"),
            ("agent.switch_halt", "agent-00010"),
        ]
        assert "incident=INC-7" in late[0].detail
        assert all(t1 <= r.at < t2 for r in late)


class TestAuth:
    async def test_without_the_token_every_endpoint_answers_401(self, kind: str) -> None:
        async with open_fleet(kind, small_fleet(token="s3cret"), token="s3cret") as fleet:
            assert (await fleet.connector.get_switch(PROGRAM)).enabled
            stranger = HttpFleet(fleet.connector.base_url, token="wrong", client=fleet.connector._client)
            with pytest.raises(TargetRejectedError, match=r"401.*bearer token"):
                await stranger.halt(PROGRAM, batch(ids(1), "h1"))
            anonymous = await fleet.admin.get(
                f"/admin/programs/{PROGRAM}/stats", headers={"Authorization": ""}
            )
            assert anonymous.status_code == 401
            assert (await fleet.effects(ids(1)))["agent-00001"]["halts"] == 0


class TestFaults:
    async def test_an_injected_error_applies_nothing(self, kind: str) -> None:
        async with open_fleet(kind, small_fleet(faults=FaultSettings(error_rate=1.0, latency_ms=0))) as fleet:
            with pytest.raises(TargetUnavailableError, match=r"503.*injected"):
                await fleet.connector.halt(PROGRAM, batch(ids(1), "h1"))
            with pytest.raises(TargetUnavailableError):
                await fleet.connector.set_switch(PROGRAM, OFF)
            stats = await fleet.stats()
            assert (stats["batches_applied"], stats["switch_changes"]) == (0, 0)

    async def test_latency_is_added_per_request(self, fleet: FleetUnderTest) -> None:
        response = await fleet.admin.put("/admin/faults", json={"latency_ms": 60, "jitter_ms": 0})
        response.raise_for_status()
        before = await fleet.stats()
        await fleet.connector.get_switch(PROGRAM)
        await fleet.connector.get_switch(PROGRAM)
        after = await fleet.stats()
        # the fleet's own record of the delay it added, not a clock read around the call
        assert after["delayed_requests"] - before["delayed_requests"] == 2
        assert after["delay_ms"] - before["delay_ms"] == 120


class TestScale:
    async def test_ten_thousand_agents_halt_in_twenty_bulk_batches(self) -> None:
        async with open_fleet("asgi", small_fleet(agents=10_000, employees=50, offline_agents=[])) as fleet:
            for b in range(20):
                result = await fleet.connector.halt(
                    PROGRAM, batch(ids(*range(b * 500 + 1, b * 500 + 501)), f"b{b}")
                )
                assert {r.status for r in result.results} == {AgentResultStatus.CONFIRMED}
            assert (await fleet.connector.list_agents(PROGRAM, state=AgentState.HALTED)).total == 10_000
            # the work is counted, not timed: twenty batches applied, each once, none replayed
            stats = await fleet.stats()
            assert (stats["batches_applied"], stats["batches_replayed"]) == (20, 0), stats
