"""The HTTP fleet connector turns every failure into the project's own errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from pausegate.config import FleetConnection
from pausegate.connectors.fleet import HttpFleet, fleet_from_connection
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.fleet import AuditRecord, BatchRequest, SwitchState

Handler = Callable[[httpx.Request], httpx.Response]
BATCH = BatchRequest(agent_ids=["agent-00001"], incident_id="INC-1", idempotency_key="k1")


def connector(handler: Handler, *, token: str | None = None) -> HttpFleet:
    return HttpFleet("http://fleet.test/", token=token, timeout=1, transport=httpx.MockTransport(handler))


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return handle


def fail_with(exc: type[httpx.TransportError]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    return handle


class TestTransientFailures:
    @pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
    async def test_server_errors_and_throttling_are_unavailable(self, status: int) -> None:
        async with connector(answer(status, {"detail": "busy"}, {"Retry-After": "2"})) as fleet:
            with pytest.raises(TargetUnavailableError, match=rf"{status}.*busy.*retry after 2s"):
                await fleet.halt("p", BATCH)

    async def test_a_timeout_is_unavailable_and_says_so(self) -> None:
        async with connector(fail_with(httpx.ReadTimeout)) as fleet:
            with pytest.raises(TargetUnavailableError, match="timed out"):
                await fleet.get_switch("p")

    async def test_a_refused_connection_is_unavailable(self) -> None:
        async with connector(fail_with(httpx.ConnectError)) as fleet:
            with pytest.raises(TargetUnavailableError, match="unreachable"):
                await fleet.list_agents("p")

    async def test_an_audit_stream_cut_off_half_way_is_unavailable(self) -> None:
        record = AuditRecord(at=datetime.now(UTC), actor="api", action="switch.disable")

        class CutStream(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield record.model_dump_json().encode() + b"\n"
                raise httpx.ReadError("connection reset")

        def handle(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=CutStream())

        got: list[AuditRecord] = []
        async with connector(handle) as fleet:
            with pytest.raises(TargetUnavailableError):
                async for r in fleet.audit_trail("p", record.at - timedelta(1), record.at + timedelta(1)):
                    got.append(r)
        assert got == [record]


class TestPermanentFailures:
    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
    async def test_client_errors_are_rejected_with_the_fleets_message(self, status: int) -> None:
        async with connector(answer(status, {"detail": "no program 'p' in this fleet"})) as fleet:
            with pytest.raises(TargetRejectedError, match=rf"{status}.*no program 'p' in this fleet"):
                await fleet.resume("p", BATCH)

    async def test_validation_problems_are_listed_in_the_message(self) -> None:
        detail = [
            {"loc": ["body", "agent_ids"], "msg": "List should have at least 1 item", "type": "too_short"}
        ]
        async with connector(answer(422, {"detail": detail})) as fleet:
            with pytest.raises(
                TargetRejectedError, match=r"body\.agent_ids: List should have at least 1 item"
            ):
                await fleet.halt("p", BATCH)

    async def test_a_plain_text_error_keeps_its_text(self) -> None:
        async with connector(lambda r: httpx.Response(404, text="Not Found here")) as fleet:
            with pytest.raises(TargetRejectedError, match="Not Found here"):
                await fleet.get_switch("p")

    async def test_an_audit_stream_refused_up_front_is_rejected(self) -> None:
        async with connector(answer(400, {"detail": "end is before start"})) as fleet:
            now = datetime.now(UTC)
            with pytest.raises(TargetRejectedError, match="end is before start"):
                async for _ in fleet.audit_trail("p", now, now - timedelta(1)):
                    pass

    async def test_a_success_that_breaks_the_contract_is_rejected(self) -> None:
        async with connector(answer(200, {"results": "not a list"})) as fleet:
            with pytest.raises(TargetRejectedError, match="does not follow the contract"):
                await fleet.halt("p", BATCH)


class TestRequests:
    async def test_the_token_is_sent_and_the_program_is_quoted(self) -> None:
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(
                200, json=SwitchState(program="a/b c", enabled=True).model_dump(mode="json")
            )

        async with connector(handle, token="s3cret") as fleet:
            state = await fleet.get_switch("a/b c")
        assert state.program == "a/b c"
        assert seen[0].headers["Authorization"] == "Bearer s3cret"
        assert seen[0].url.raw_path == b"/v1/programs/a%2Fb%20c/switch"

    async def test_a_connection_builds_a_connector_with_its_token_and_timeout(self) -> None:
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"agents": [], "next_page_token": None, "total": 0})

        conn = FleetConnection(url="http://fleet.example:8701", token=SecretStr("t0k"), timeout_seconds=7)
        fleet = fleet_from_connection(conn, transport=httpx.MockTransport(handle))
        async with fleet:
            page = await fleet.list_agents("p", page_size=10, state=None)
        assert page.total == 0
        assert seen[0].headers["Authorization"] == "Bearer t0k"
        assert str(seen[0].url) == "http://fleet.example:8701/v1/programs/p/agents?page_size=10"
        assert seen[0].extensions["timeout"]["read"] == 7

    async def test_an_injected_client_is_used_and_left_open(self) -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answer(200, {"results": []})))
        async with HttpFleet("http://fleet.test", client=client) as fleet:
            assert (await fleet.halt("p", BATCH)).results == []
        assert not client.is_closed
        await client.aclose()
