"""Who the console shows a program to: the board and live events only to people with a role in it, and
a live version made from what the person is shown (issue 29)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest_asyncio

from pausegate.console.pages import Visitor
from pausegate.console.routes.board import board_context
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.plan import Approval
from pausegate.models.state import PauseState
from pausegate.policy.transitions import new_pause
from tests.api.support import ApiWorld, api_world
from tests.console.test_console_http import signed_in
from tests.support.fault_report import record_result
from tests.support.harness import Harness, example_runbook


@pytest_asyncio.fixture
async def paused(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as api:
        console = api.app.state.console
        console.heartbeat_seconds, console.stream_seconds = 0.2, 1.5  # short streams that end by themselves
        answer = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert answer.status_code == 201, answer.text
        await api.wait_for_state("UNDER_REVIEW")
        yield api


async def events(client: httpx.AsyncClient, url: str) -> tuple[int, str]:
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as r:
        return r.status_code, "".join([chunk async for chunk in r.aiter_text()])


class TestWhoSeesAProgram:
    async def test_the_board_and_live_events_show_a_program_only_to_people_with_a_role_in_it(
        self, paused: ApiWorld
    ) -> None:
        api, p = paused, paused.program
        row = f'data-program="{p}"'
        async with signed_in(api, "ann") as analyst:  # a checklist role of the program
            assert row in (await analyst.get("/console/")).text
            status, streamed = await events(analyst, "/console/events")
            assert status == 200 and "event: board" in streamed and row in streamed
        async with signed_in(api, "ada") as admin:  # the admin: no role in any program
            board = await admin.get("/console/")
            assert board.status_code == 200 and row not in board.text and "UNDER_REVIEW" not in board.text
            status, streamed = await events(admin, "/console/events")
            assert status == 200 and "event:" not in streamed and p not in streamed, streamed[:300]
            refused, body = await events(admin, f"/console/pauses/{p}/events?page=pause")
            assert refused == 403 and "event:" not in body
            # The pause page itself is the API's redacted view, with no live events to follow.
            page = await admin.get(f"/console/pauses/{p}")
            assert page.status_code == 200 and "sse-connect" not in page.text
        record_result("board and live events list every program", "the admin (no role in the program) opens "
                      "the board, its live events and the pause's", injected=3,
                      outcome="program not on the board or in its events; the pause's events refused (403)")

    def test_the_live_version_changes_only_with_what_the_person_is_shown(self) -> None:
        """Someone with a role in the program but none of its review roles is shown a redacted view; a
        comment on an approval (hidden from them) must not change the version their page and stream carry,
        or the stream would tell them when something hidden changed."""
        program = "visibility"
        example = example_runbook(program)
        assert example.watch is not None
        runbook = example.model_copy(update={"watch": example.watch.model_copy(update={"consent_roles": ["desk"]})})
        commander = Actor(id="local:carol", roles=list(runbook.roles.commander))
        at = datetime(2026, 11, 30, tzinfo=UTC)
        state = new_pause(f"pause/{program}", PauseRequest(program=program, reason="r", commander=commander,
                                                            runbook=runbook), at, "s")
        state.approvals = [Approval(actor_id="local:cleo", role="ciso", digest="ab" * 32, at=at, comment="first")]
        commented = state.model_copy(update={"approvals": [state.approvals[0].model_copy(
            update={"comment": "a comment naming who read the data"})]})
        api = SimpleNamespace(programs=lambda: [program], runbook=lambda _: runbook)

        def version(of: Actor, status: PauseState) -> str:
            visitor = cast(Visitor, SimpleNamespace(api=api, actor=of))
            context = board_context(visitor, {program: status})
            assert [p.id for p in context["programs"]] == [program]
            return str(context["version"])

        desk = Actor(id="local:dora", roles=["desk"])
        assert version(desk, state) == version(desk, commented)
        assert version(commander, state) != version(commander, commented)
