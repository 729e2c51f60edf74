"""Ways to run the reference fleet: in a thread, from the command line, and its OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from pausegate.models.fleet import BatchRequest, SwitchRequest
from pausegate.reference.fleet import ThreadedFleet
from pausegate.reference.fleet.__main__ import main, openapi_document, parser, settings_from
from tests.fleet.support import PROGRAM, ids, open_fleet, small_fleet

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet-openapi.json"


class TestRunning:
    def test_a_threaded_fleet_serves_synchronous_callers_and_stops(self) -> None:
        with ThreadedFleet(small_fleet(token="t")) as fleet:
            response = httpx.get(
                f"{fleet.url}/v1/programs/{PROGRAM}/switch", headers={"Authorization": "Bearer t"}
            )
            assert response.json()["enabled"] is True
        assert not fleet._thread.is_alive()

    def test_command_line_flags_become_settings(self) -> None:
        args = parser().parse_args(
            ["--agents", "7", "--program", "a", "--program", "b",
             "--offline-agents", "agent-00001,agent-00002", "--latency-ms", "5", "--error-rate", "0.25",
             "--token", "T", "--telemetry-dsn", "postgresql:///x"]
        )  # fmt: skip
        settings = settings_from(args)
        assert (settings.agents, settings.programs, settings.offline_agents) == (
            7,
            ["a", "b"],
            ["agent-00001", "agent-00002"],
        )
        assert (settings.faults.latency_ms, settings.faults.error_rate) == (5, 0.25)
        assert settings.token is not None and settings.token.get_secret_value() == "T"


class TestOpenApi:
    def test_the_published_document_is_the_one_the_service_generates(self) -> None:
        assert DOC.read_text() == openapi_document(), (
            "regenerate: python -m pausegate.reference.fleet --openapi FILE"
        )

    def test_the_flag_writes_the_document(self, tmp_path: Path) -> None:
        target = tmp_path / "fleet.json"
        assert main(["--openapi", str(target)]) == 0
        assert '"/v1/programs/{program}/halt"' in target.read_text()


class TestStateFile:
    async def test_a_restarted_fleet_remembers_switches_halts_answers_and_audit(self, tmp_path: Path) -> None:
        settings = small_fleet(state_file=tmp_path / "fleet-state.jsonl")
        window = (datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1))
        halt = BatchRequest(agent_ids=ids(1, 2, 3), incident_id="INC-7", idempotency_key="h1")

        async with open_fleet("asgi", settings) as before:
            await before.connector.set_switch(PROGRAM, SwitchRequest(enabled=False, incident_id="INC-7"))
            first = await before.connector.halt(PROGRAM, halt)
            await before.offline(ids(4))
            trail = [r async for r in before.connector.audit_trail(PROGRAM, *window)]

        async with open_fleet("asgi", settings) as after:
            assert not (await after.connector.get_switch(PROGRAM)).enabled
            replay = await after.connector.halt(PROGRAM, halt)
            assert (replay.replayed, replay.results) == (True, first.results)
            effects = await after.effects(ids(1, 3, 4))
            assert [(e["state"], e["halts"], e["queued"]) for e in effects.values()] == [
                ("halted", 1, None),
                ("offline", 0, "halt"),
                ("offline", 0, None),
            ]
            assert [r async for r in after.connector.audit_trail(PROGRAM, *window)] == trail
