"""Fixtures for CLI tests: a pause world, the API in front of it, and a way to run ``pausegate``."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


CliRunner = Callable[..., Awaitable[Run]]


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as world:
        yield world


@pytest_asyncio.fixture
async def cli(api: ApiWorld, tmp_path: Path) -> CliRunner:
    """Run ``pausegate ARGS`` as a user would, in a subprocess, as ``who``.

    The API serves from this test's event loop, so the subprocess is awaited, never waited on blocking.
    """

    async def run(
        *args: str, who: str | None = "carol", env: dict[str, str] | None = None, timeout: float = 120.0
    ) -> Run:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PAUSEGATE_")}
        environment.update({"PAUSEGATE_API_URL": api.url, "COLUMNS": "200", "NO_COLOR": "1"})
        environment["HOME"] = str(tmp_path)  # no stray ~/.config/pausegate/cli.toml
        if who is not None:
            environment["PAUSEGATE_TOKEN"] = api.tokens[who]
        environment.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pausegate.cli.main",
            *args,
            env=environment,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())

    return run
