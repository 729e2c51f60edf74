"""Drills on the board: a program's running or recent drill, labelled a drill and linked to its page, shown
only to people with a role in the program, and counted in none of the board's pause figures (issue 25)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

from tests.api.support import ApiWorld, api_world
from tests.console.test_console_http import signed_in
from tests.support.harness import Harness


@pytest_asyncio.fixture
async def drilled(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as api:
        answer = await api.client("carol").post(f"/v1/drills/{api.program}", json={"reason": "game day"})
        assert answer.status_code == 201, answer.text
        yield api


async def board_until(client: httpx.AsyncClient, fact: str, timeout: float = 60.0) -> str:
    """The board's HTML once it shows ``fact`` (a started drill is listed by the server after a moment)."""
    deadline = time.monotonic() + timeout
    while fact not in (page := (await client.get("/console/")).text):
        assert time.monotonic() < deadline, f"the board never showed {fact!r}"
        await asyncio.sleep(0.2)
    return page


def pause_row(page: str, program: str) -> str:
    start = page.index(f'data-program="{program}"')
    return page[start:page.index("</tr>", start)]


class TestDrillsOnTheBoard:
    async def test_a_running_then_ended_drill_is_shown_as_a_drill_to_the_programs_people_only(
        self, drilled: ApiWorld
    ) -> None:
        api, p = drilled, drilled.program
        line = f'data-drill="{p}"'
        async with signed_in(api, "ann") as analyst:  # a checklist role of the program
            running = await board_until(analyst, line)
            drills = running[running.index('<table class="board drills"'):]
            assert f'href="/console/drills/{p}"' in drills and 'data-fact="drill-label">drill<' in drills
            # the board's pause line and figures know nothing of it: no pause, nothing halted or counted
            assert 'data-fact="state">no pause' in pause_row(running, p)
            assert "data-fact=\"agents-halted\"" not in pause_row(running, p)
            assert (await analyst.get(f"/console/drills/{p}")).status_code == 200
            ended = await board_until(analyst, 'data-fact="drill-phase">RESTORED')
            assert line in ended and 'data-fact="drill-running"' not in ended
            assert 'data-fact="state">no pause' in pause_row(ended, p)
            # the API's pauses know nothing of it either
            assert (await api.client("ann").get(f"/v1/pauses/{p}")).status_code == 404
        async with signed_in(api, "ada") as admin:  # the admin: no role in any program
            board = await admin.get("/console/")
            assert board.status_code == 200 and line not in board.text and "/console/drills/" not in board.text
