"""The whole embedded stack killed at once (SIGKILL to every process of it: the stack's own, Temporal's dev
server, PostgreSQL, the urgent worker) in the middle of containment, then started again on the same data
directory: the pause is contained, nothing was done twice, and its evidence verifies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from pausegate.config import load_settings
from pausegate.embedded.stack import EXAMPLE_PROGRAM
from pausegate.evidence.open_store import open_evidence_store
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import verify_bundle
from pausegate.reference.fleet.agents import agent_id
from pausegate.temporal.client import connect
from pausegate.temporal.pauses import read_status
from tests.faults.limited_server import free_port
from tests.faults.support import ROOT, until
from tests.support.fault_report import record_result
from tests.support.polling import polled

AGENTS = 100
OFFLINE = "agent-00007"  # keeps containment open (retrying its halt) until it returns


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's private tmp dir: the embedded PostgreSQL runs as its own user.
    path = Path(tempfile.mkdtemp(prefix="pausegate-killed-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(path.with_name(f"{path.name}-postgres"), ignore_errors=True)


class StackProcess:
    """``python -m tests.faults.stack_proc`` on one data directory and fixed ports."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {"--temporal-port": free_port(), "--fleet-port": free_port(), "--api-port": free_port()}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> dict[str, Any]:
        self.starts += 1
        ready = self.data_dir.with_name(f"{self.data_dir.name}-ready-{self.starts}")
        args = [sys.executable, "-m", "tests.faults.stack_proc", "--data-dir", str(self.data_dir),
                "--ready", str(ready), "--agents", str(AGENTS), "--offline", OFFLINE]
        for flag, port in self.ports.items():
            args += [flag, str(port)]
        log = self.data_dir.with_name(f"{self.data_dir.name}-stack-{self.starts}.log").open("wb")
        # A session of its own: its process group is the stack's, apart from pytest's.
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},  # noqa: ASYNC220
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the stack exited with {proc.returncode}; see {log.name}")
            return ready.exists() and bool(ready.read_text())

        await until(up, timeout=120, what="the stack to start")
        return dict(json.loads(ready.read_text()))

    def kill_everything(self) -> int:
        """SIGKILL to every process of the stack at once: its process group and whatever runs on its data
        (PostgreSQL's server detaches from the group). Returns how many processes were killed."""
        assert self.proc is not None
        mine = str(self.data_dir)
        victims = {p for p in psutil.process_iter(["pid", "cmdline"])
                   if any(mine in part for part in (p.info["cmdline"] or []))}
        victims |= {p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == self.proc.pid}
        for p in list(victims):  # PostgreSQL's backends and helpers, say
            try:
                victims |= set(p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(list(victims), timeout=20)
        assert not alive, f"still running after SIGKILL: {alive}"
        self.proc.wait(10)
        return len(victims)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill_everything()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


async def view(ready: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=ready["api_url"], timeout=30,
                                 headers={"Authorization": f"Bearer {ready['token']}"}) as api:
        response = await api.get(f"/v1/pauses/{EXAMPLE_PROGRAM}")
        assert response.status_code == 200, response.text
        return dict(response.json())


async def until_view(ready: dict[str, Any], check: Any, what: str) -> dict[str, Any]:
    return await polled(lambda: view(ready), until=check, what=what, every=0.2)


async def fleet(ready: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(base_url=ready["fleet_url"], timeout=30) as client:
        response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()


@pytest.mark.slow
async def test_the_whole_stack_killed_mid_containment_restarts_contained_with_nothing_done_twice(
    data_dir: Path,
) -> None:
    stack = StackProcess(data_dir)
    try:
        first = await stack.start()
        token = first["admin_token"]
        assert token
        async with httpx.AsyncClient(base_url=first["api_url"], timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            started = await api.post("/v1/pauses", json={"program": EXAMPLE_PROGRAM, "reason": "leak"})
            assert started.status_code == 201, started.text
        first["token"] = token
        # Mid-containment: the switch is off and the halts went out, one agent is offline and retried.
        during = await until_view(first, lambda v: v["containment"]["agents"]["switch_off"]
                                  and v["containment"]["agents"]["attempts"] >= 1, "containment under way")
        assert during["state"] == "CONTAINING"
        killed = stack.kill_everything()

        again = await stack.start()
        assert again["admin_token"] is None  # the same data: the first admin exists
        again["token"] = token
        await fleet(again, "POST", f"/admin/programs/{EXAMPLE_PROGRAM}/online", json={"agent_ids": [OFFLINE]})
        final = await until_view(again, lambda v: v["state"] == "UNDER_REVIEW", "containment to finish")
        c = final["containment"]
        assert c["agents"]["confirmed"] and c["access_verified_at"] and not c["evidence_pending"]

        # Nothing done twice: the fleet switched the program off once and halted each agent at most once.
        stats = await fleet(again, "GET", f"/admin/programs/{EXAMPLE_PROGRAM}/stats")
        assert stats["switch_enabled"] is False and stats["collecting"] == 0 and stats["switch_changes"] == 1
        agent_ids = [agent_id(n) for n in range(1, AGENTS + 1)]
        effects = await fleet(again, "POST", f"/admin/programs/{EXAMPLE_PROGRAM}/effects",
                              json={"agent_ids": agent_ids})
        assert max(e["halts"] for e in effects) == 1, "an agent was halted twice"
        # One pause, one start: the timeline has the kill switch pulled once.
        settings = load_settings(Path(again["config"]))
        client = await connect(settings.temporal, settings.encryption)
        state = await read_status(client, EXAMPLE_PROGRAM)
        assert sum(1 for e in state.timeline if e.action == "pause.started") == 1
        # Evidence intact: every sealed bundle verifies against the deployment's key.
        store = open_evidence_store(settings.evidence)
        assert isinstance(store, LocalEvidenceStore)
        for sealed in state.containment.evidence:
            report = verify_bundle(store.bundle_path(sealed.bundle.key), store.public_key_path)
            assert report.ok, report
    finally:
        stack.stop()
    record_result("whole embedded stack killed (SIGKILL to every process)", "mid-containment, restarted on the "
                  "same data directory", injected=killed,
                  outcome="contained; switch off once, each agent halted once; evidence verifies",
                  bundles=len(state.containment.evidence))
