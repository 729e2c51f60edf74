"""What the benchmarks share: a throw-away PostgreSQL and Temporal dev server, the reference fleet as a
process of its own, the workers as the embedded stack runs them (the workflows in this process, the
urgent and the proof steps each in a process of its own), and peak RSS of a process read from /proc.
History encryption is on, as the embedded stack's default is: the client, the workers and every
configuration a benchmark writes carry the same keys.

Not a benchmark itself; ``bench/run_all.py`` runs the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pausegate.config import (
    EncryptionSettings,
    EvidenceSettings,
    FleetConnection,
    PostgresConnection,
    Settings,
    TemporalSettings,
)
from pausegate.connectors.registry import Connectors
from pausegate.embedded.history_keys import embedded_encryption
from pausegate.embedded.postgres import dsn_as, start_logging_postgres
from pausegate.embedded.stack import prepare_database, write_config
from pausegate.embedded.worker_process import worker_process
from pausegate.models.people import Actor
from pausegate.models.runbook import Runbook
from pausegate.runbook.loader import load_runbook
from pausegate.temporal.client import connect, temporal_cli
from pausegate.temporal.roles import WorkerRole
from pausegate.temporal.worker import build_worker

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "runbooks" / "employee-telemetry.yaml"
COMMANDER = Actor(id="carol", roles=["incident-commander"])


def peak_rss_mib(pid: int | None = None) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int | None = None) -> None:
    """Start the peak over from the current resident set (Linux clear_refs 5)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid or 'self'}/clear_refs").write_text("5")


def runbook_for(program: str, *, connection: str = "telemetry-db") -> Runbook:
    """The worked example's runbook for ``program``, its database reached through ``connection``."""
    base = load_runbook(RUNBOOK)
    datasets = [d.model_copy(update={"connection": connection}) for d in base.datasets]
    sources = [a.model_copy(update={"connection": connection}) if a.kind == "postgres_log" else a
               for a in base.audit_sources]
    return base.model_copy(update={"program": base.program.model_copy(update={"id": program}),
                                   "datasets": datasets, "audit_sources": sources, "notifications": []})


def new_program() -> str:
    return f"telemetry-{uuid.uuid4().hex[:8]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FleetProcess:
    """The reference fleet, serving in a process of its own."""

    process: asyncio.subprocess.Process
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.asynccontextmanager
async def fleet_process(programs: list[str], *, agents: int, work: Path, telemetry_dsn: str | None = None,
                        latency_ms: float = 20.0, jitter_ms: float = 10.0,
                        tick_seconds: float = 0.5) -> AsyncIterator[FleetProcess]:
    port = _free_port()
    args = [sys.executable, "-m", "pausegate.reference.fleet", "--port", str(port), "--agents", str(agents),
            "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms), "--tick-seconds", str(tick_seconds)]
    for p in programs:
        args += ["--program", p]
    env = dict(os.environ)
    if telemetry_dsn:
        env["PAUSEGATE_FLEET_TELEMETRY_DSN"] = telemetry_dsn
    log = (work / f"fleet-{port}.log").open("ab")
    process = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/v1/programs/{programs[0]}/switch")).status_code == 200:
                        break
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the fleet did not start; see {log.name}")
                await asyncio.sleep(0.1)
        yield FleetProcess(process, url)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()


@dataclass
class World:
    work: Path
    admin_dsn: str
    pglog: Path
    client: Client
    encryption: EncryptionSettings | None = None

    def database(self, program: str, *, employees: int = 50) -> str:
        return prepare_database(self.admin_dsn, program.replace("-", "_"), employees=employees)

    def settings(self, *, queue: str, databases: dict[str, str], fleet_url: str) -> Settings:
        """One connection set; with several programs, each names its own database connection."""
        target = self.client.service_client.config.target_host
        connections: dict[str, object] = {"telemetry-fleet": FleetConnection(url=fleet_url)}  # type: ignore[arg-type]
        for name, dsn in databases.items():
            connections[name] = PostgresConnection(dsn=dsn, log_dir=self.pglog)  # type: ignore[arg-type]
        return Settings(
            temporal=TemporalSettings(address=target, task_queue=queue),
            evidence=EvidenceSettings(directory=self.work / queue / "evidence", signing_key=self.work / "key.pem"),
            connections=connections,  # type: ignore[arg-type]
            encryption=self.encryption,
        )

    @contextlib.asynccontextmanager
    async def worker_process(self, settings: Settings, role: WorkerRole) -> AsyncIterator[asyncio.subprocess.Process]:
        """A worker of ``role`` as its own process, as the embedded stack runs it; ready when it polls."""
        queue = settings.temporal.task_queue
        config = self.work / f"{queue}.toml"
        write_config(config, settings)
        async with worker_process(config, self.work / f"{queue}-{role.value}.log", role) as p:
            await wait_for_poller(self.client, settings.temporal.urgent_queue if role is WorkerRole.URGENT else queue)
            yield p

    def urgent_worker(self, settings: Settings) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
        return self.worker_process(settings, WorkerRole.URGENT)

    @contextlib.asynccontextmanager
    async def stack_workers(self, settings: Settings, connectors: Connectors) -> AsyncIterator[StackWorkers]:
        """The workers as the embedded stack runs them: the workflows in this process (beside the client
        that starts pauses, as the stack's API is), the urgent and the proof steps each in a process."""
        async with self.worker_process(settings, WorkerRole.URGENT) as urgent, \
                self.worker_process(settings, WorkerRole.PROOF) as proof, \
                build_worker(self.client, connectors, role=WorkerRole.WORKFLOWS):
            yield StackWorkers(urgent=urgent, proof=proof)


@dataclass
class StackWorkers:
    urgent: asyncio.subprocess.Process
    proof: asyncio.subprocess.Process


async def wait_for_poller(client: Client, queue: str, timeout: float = 60.0) -> None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
        if response.pollers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no worker polls {queue}")


@contextlib.asynccontextmanager
async def world(prefix: str = "pausegate-bench-", *, encrypt_history: bool = True) -> AsyncIterator[World]:
    """PostgreSQL with statement logging and a Temporal dev server, removed afterwards; with
    ``encrypt_history`` (the embedded default) keys of its own and a client that seals every payload."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    pglog = work / "pglog"
    admin_dsn, server = start_logging_postgres(work / "pg", pglog, keep=False)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        encryption = embedded_encryption(work, work / "config.toml", ui_origin=None) if encrypt_history else None
        client = env.client
        if encryption is not None:
            client = await connect(TemporalSettings(address=env.client.service_client.config.target_host),
                                   encryption)
        yield World(work=work, admin_dsn=admin_dsn, pglog=pglog, client=client, encryption=encryption)
    finally:
        await env.shutdown()
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def writer_dsn(database_dsn: str) -> str:
    return dsn_as(database_dsn, "telemetry_ingest")
