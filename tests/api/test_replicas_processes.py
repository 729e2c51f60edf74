"""Two API replicas as two processes (``python -m pausegate.app``), as a deployment runs them:
each migrates the state database at start, and what one changes the other enforces."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from pausegate.api.refusal_log import LOG_NAME, RefusalLog
from pausegate.apidb.database import ApiDatabase
from pausegate.auth.users.postgres import PgUserDirectory
from pausegate.config import StateDatabaseSettings, TemporalSettings, dump_settings
from pausegate.evidence.open_store import open_evidence_store
from pausegate.records.postgres import PgMedium
from tests.api.replicas_support import replica_settings
from tests.support.harness import Harness

URL = re.compile(r"pausegate API on (http://\S+) ")


@contextlib.asynccontextmanager
async def api_process(config: Path) -> AsyncIterator[str]:
    """``python -m pausegate.app`` on ``config`` until the block ends; yields its URL."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pausegate.app", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    drain: asyncio.Task[bytes] | None = None
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = (await child.stdout.readline()).decode()
                assert line, "the API process ended before it served"
                if found := URL.search(line):
                    break
        drain = asyncio.create_task(child.stdout.read())  # keep its pipe from filling up
        yield found.group(1)
    finally:
        if child.returncode is None:
            child.terminate()
            await child.wait()
        if drain is not None:
            drain.cancel()


class TestReplicaProcesses:
    async def test_two_api_processes_share_users_roles_and_one_refusal_chain(
        self, harness: Harness, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        settings = replica_settings(harness, tmp_path, state_db[0], port=0)
        target = harness.client.service_client.config.target_host
        settings = settings.model_copy(update={"temporal": TemporalSettings(
            address=target, task_queue=harness.settings.temporal.task_queue)})
        config = tmp_path / "config.toml"
        config.write_text(dump_settings(settings))
        with ApiDatabase(state_db[0]) as db:
            key = open_evidence_store(settings.evidence).signing_key
            admin = PgUserDirectory(db, key).issue(None, "ada", ["admin"])[1]
        auth = {"Authorization": f"Bearer {admin}"}
        async with api_process(config) as a, api_process(config) as b, httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{a}/v1/users", headers=auth, json={"name": "zed", "roles": ["security-analyst"]})
            assert r.status_code == 201, r.text
            zed = {"Authorization": f"Bearer {r.json()['token']}"}
            assert (await http.get(f"{b}/v1/whoami", headers=zed)).json()["roles"] == ["security-analyst"]
            # zed has no role in the program: refused on both, into the one refusal log.
            for url in (a, b):
                r = await http.post(f"{url}/v1/pauses", headers=zed, json={"program": harness.program, "reason": "x"})
                assert r.status_code == 403
            assert (await http.delete(f"{b}/v1/users/zed", headers=auth)).status_code == 204
            assert (await http.get(f"{a}/v1/whoami", headers=zed)).status_code == 401
        # Both processes stopped, each recorded its refusal when it stopped (or at once): one intact chain.
        with ApiDatabase(state_db[0]) as db:
            key = open_evidence_store(settings.evidence).signing_key
            log = RefusalLog(PgMedium(db.sync_pool.connection, LOG_NAME), key)
            zeds = [e for e in log.entries() if e.actor == "local:zed"]
            assert sum(e.count for e in zeds) == 2 and log.problems() == []
