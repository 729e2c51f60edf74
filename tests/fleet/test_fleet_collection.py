"""The collection profile: read and set through the contract, reported per agent, honoured in the rows written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pausegate.errors import TargetRejectedError
from pausegate.models.collection import CollectionRequest
from pausegate.models.fleet import AgentState, AuditRecord, BatchRequest, SwitchRequest
from tests.fleet.support import OFFLINE, PROGRAM, FleetUnderTest, Postgres, eventually, ids, open_fleet, small_fleet

ALL = ["key_codes", "mouse_buttons", "mouse_positions", "typed_content", "window_titles"]
NARROW = ["key_codes", "mouse_buttons", "mouse_positions"]


def narrow(key: str = "INC-9") -> CollectionRequest:
    return CollectionRequest(data_types=NARROW, incident_id=key, reason="typed content and window titles dropped")


class TestProfileContract:
    async def test_every_agent_reports_the_full_profile_until_it_is_narrowed(self, fleet: FleetUnderTest) -> None:
        profile = await fleet.connector.get_collection(PROGRAM)
        assert profile.data_types == ALL and profile.available == ALL
        page = await fleet.connector.list_agents(PROGRAM, page_size=5)
        assert all(a.data_types == ALL for a in page.agents)

        profile = await fleet.connector.set_collection(PROGRAM, narrow())
        assert profile.data_types == NARROW and profile.incident_id == "INC-9"
        agents = (await fleet.connector.list_agents(PROGRAM, page_size=50)).agents
        online = [a for a in agents if a.state != AgentState.OFFLINE]
        offline = [a for a in agents if a.state == AgentState.OFFLINE]
        assert online and all(a.data_types == NARROW for a in online)
        # An offline agent cannot have heard of it: it reports what it ran, until it returns.
        assert [a.id for a in offline] == OFFLINE and all(a.data_types == ALL for a in offline)
        returned = await fleet.online(OFFLINE[:1])
        assert returned[0]["data_types"] == NARROW

    async def test_an_unknown_data_type_is_refused_and_changes_nothing(self, fleet: FleetUnderTest) -> None:
        bad = CollectionRequest(data_types=["key_codes", "screenshots"], incident_id="INC-9")
        with pytest.raises(TargetRejectedError, match="unknown data types: screenshots"):
            await fleet.connector.set_collection(PROGRAM, bad)
        assert (await fleet.connector.get_collection(PROGRAM)).data_types == ALL

    async def test_setting_the_same_profile_again_changes_nothing(self, fleet: FleetUnderTest) -> None:
        first = await fleet.connector.set_collection(PROGRAM, narrow("INC-1"))
        again = await fleet.connector.set_collection(PROGRAM, narrow("INC-2"))
        assert again.changed_at == first.changed_at and again.incident_id == "INC-1"


async def column_counts(dsn: str, since_id: int) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*), count(key_code), count(typed_content), count(window_title)"
            " FROM telemetry.keystrokes WHERE id > %s", (since_id,))
        row = await cur.fetchone()
        assert row is not None
        return {"rows": row[0], "key_code": row[1], "typed_content": row[2], "window_title": row[3]}


async def last_keystroke_id(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        row = await (await conn.execute("SELECT coalesce(max(id), 0) FROM telemetry.keystrokes")).fetchone()
        assert row is not None
        return int(row[0])


class TestProfileInTheRows:
    async def test_a_dropped_type_is_never_written_again(
        self, writing_fleet: FleetUnderTest, postgres: Postgres
    ) -> None:
        fleet = writing_fleet
        await fleet.wait_for_stats(lambda s: s["ticks_written"] >= 2)
        await fleet.connector.set_collection(PROGRAM, narrow())
        # Answered once no write under the old profile can commit: every later row is narrowed.
        after = await last_keystroke_id(postgres.admin_dsn)
        ticks = (await fleet.stats())["ticks_written"]
        await fleet.wait_for_stats(lambda s: s["ticks_written"] >= ticks + 5)
        counts = await column_counts(postgres.admin_dsn, after)
        assert counts["rows"] > 0 and counts["key_code"] == counts["rows"]
        assert counts["typed_content"] == 0 and counts["window_title"] == 0

    async def test_a_misbehaving_agent_writes_what_it_was_told_to_drop(
        self, writing_fleet: FleetUnderTest, postgres: Postgres
    ) -> None:
        fleet = writing_fleet
        await fleet.connector.set_collection(PROGRAM, narrow())
        faults = (await fleet.admin.get("/admin/faults")).json()
        rogue = ids(1)
        response = await fleet.admin.put("/admin/faults", json={**faults, "profile_ignored_by": rogue})
        response.raise_for_status()
        after = await last_keystroke_id(postgres.admin_dsn)
        # It still reports the profile it was sent: only the data shows it.
        agent = (await fleet.connector.list_agents(PROGRAM, page_size=1)).agents[0]
        assert agent.id == rogue[0] and agent.data_types == NARROW
        counts = await eventually(lambda: column_counts(postgres.admin_dsn, after),
                                  lambda c: c["typed_content"] > 0, 10, "typed content from the rogue agent")
        async with await psycopg.AsyncConnection.connect(postgres.admin_dsn) as conn:
            cur = await conn.execute("SELECT DISTINCT agent_id FROM telemetry.keystrokes"
                                     " WHERE id > %s AND typed_content IS NOT NULL", (after,))
            assert [r[0] for r in await cur.fetchall()] == rogue
        assert counts["typed_content"] < counts["rows"]


class TestIndividualHaltsOutliveTheSwitch:
    async def test_an_agent_halted_while_the_switch_was_off_stays_halted_when_it_turns_on(
        self, fleet: FleetUnderTest
    ) -> None:
        c = fleet.connector
        await c.set_switch(PROGRAM, SwitchRequest(enabled=False, incident_id="INC-3"))
        # One online agent and one offline agent of an employee who did not consent.
        chosen = [ids(4)[0], OFFLINE[0]]
        result = await c.halt(PROGRAM, BatchRequest(agent_ids=chosen, incident_id="INC-3", idempotency_key="k"))
        assert [r.status for r in result.results] == ["confirmed", "pending"]
        await c.set_switch(PROGRAM, SwitchRequest(enabled=True, incident_id="INC-3"))
        await fleet.online([OFFLINE[0]])
        agents = {a.id: a for a in (await c.list_agents(PROGRAM, page_size=50)).agents}
        assert agents[chosen[0]].state == AgentState.HALTED
        assert agents[chosen[1]].state == AgentState.HALTED
        assert agents[ids(5)[0]].state == AgentState.COLLECTING


class TestProfileAcrossRestarts:
    async def test_a_restarted_fleet_remembers_the_profile_and_what_offline_agents_still_run(
        self, tmp_path: Path
    ) -> None:
        settings = small_fleet(state_file=tmp_path / "fleet-state.jsonl")
        async with open_fleet("asgi", settings) as before:
            await before.connector.set_collection(PROGRAM, narrow())
            trail = [r.action for r in await audit(before)]
        async with open_fleet("asgi", settings) as after:
            assert (await after.connector.get_collection(PROGRAM)).data_types == NARROW
            agents = {a.id: a for a in (await after.connector.list_agents(PROGRAM, page_size=50)).agents}
            assert agents[ids(1)[0]].data_types == NARROW and agents[OFFLINE[0]].data_types == ALL
            assert [r.action for r in await audit(after)] == trail and "collection.set" in trail


async def audit(fleet: FleetUnderTest) -> list[AuditRecord]:
    now, minute = datetime.now(UTC), timedelta(minutes=1)
    return [r async for r in fleet.connector.audit_trail(PROGRAM, now - minute, now + minute)]
