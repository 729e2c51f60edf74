"""The embedded stack: Temporal dev server (SQLite), PostgreSQL, reference fleet, chat sink, a worker and
the urgent and proof workers (processes of their own).

One data directory holds everything that must survive a restart: the Temporal database,
the PostgreSQL cluster and its logs, the evidence store and the fleet's state, plus a
``config.toml`` that clients (CLI, tests) read. Stopped and started again on the same
directory, an open pause goes on where it was.

The data directory is owner-only (0700), and every file in it that holds a secret (``config.toml``
with the connections' DSNs and tokens, ``users.json`` with token hashes, the signing key) is created
0600 and never exists with wider permissions: it is written to a new file created 0600 and renamed
into place. Started as root, the embedded PostgreSQL runs as its own user, which could not enter an
owner-only directory; its cluster and log then live beside it, in ``<data>-postgres/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import structlog
from temporalio.testing import WorkflowEnvironment

from pausegate.api.backends import ensure_first_admin
from pausegate.app import serve
from pausegate.config import (
    ApiSettings,
    EncryptionSettings,
    EvidenceSettings,
    FleetConnection,
    PostgresConnection,
    Settings,
    TemporalSettings,
    VersioningSettings,
    WebhookConnection,
    dump_settings,
)
from pausegate.connectors.registry import Connectors
from pausegate.embedded.api_database import prepare_state_database
from pausegate.embedded.history_keys import embedded_encryption
from pausegate.embedded.postgres import dsn_as, dsn_for_database, start_logging_postgres, stop_postgres
from pausegate.embedded.worker_process import worker_process
from pausegate.evidence.files import DIR_MODE, replace_file
from pausegate.evidence.signing_keys import load_or_create_signing_key, pinned_fingerprint
from pausegate.observability.tracing import setup_tracing
from pausegate.reference.chat_sink import ChatSink, RunningSink
from pausegate.reference.example.browsing import browsing
from pausegate.reference.example.seed import seed_example
from pausegate.reference.fleet.server import RunningFleet, serve_fleet
from pausegate.reference.fleet.settings import FaultSettings, FleetSettings
from pausegate.temporal.client import connect, temporal_cli
from pausegate.temporal.codec import codec_of, data_converter_for
from pausegate.temporal.roles import WorkerRole
from pausegate.temporal.versioning import adopt_stranded_pauses, promote
from pausegate.temporal.worker import build_worker

EXAMPLE_PROGRAM = "employee-telemetry"
EXAMPLE_DATABASE = "telemetry"

log = structlog.get_logger(__name__)


@dataclass
class StackOptions:
    """What to start and where."""

    data_dir: Path
    program: str = EXAMPLE_PROGRAM
    agents: int = 10_000
    employees: int = 50
    offline_agents: list[str] = field(default_factory=list)
    temporal_port: int | None = 7233
    ui_port: int | None = 8233
    fleet_port: int = 0
    chat_port: int = 0
    api_port: int = 0
    fleet_latency_ms: float = 20.0
    fleet_jitter_ms: float = 10.0
    telemetry_tick_seconds: float = 0.5
    browse_seconds: float | None = 60.0  # employees reading the telemetry (None: nobody browses)
    task_queue: str = "pausegate"
    runbooks_dir: Path = Path("runbooks")
    run_worker: bool = True
    temporal: WorkflowEnvironment | None = None  # reuse a running server (tests)
    encrypt_history: bool = True  # keys in <data>/keys, codec endpoint on the API (docs/encryption.md)


@dataclass
class RunningStack:
    """Where each part listens, and the configuration clients use."""

    settings: Settings
    config_path: Path
    temporal: WorkflowEnvironment
    fleet: RunningFleet
    chat: RunningSink
    postgres_dsn: str
    database_dsn: str
    ui_url: str | None
    connectors: Connectors
    api_url: str
    admin_token: str | None = None
    urgent_worker: asyncio.subprocess.Process | None = None  # the urgent worker's process (run_worker)
    proof_worker: asyncio.subprocess.Process | None = None  # the proof worker's process (run_worker)

    def instructions(self) -> list[str]:
        """How to use the stack from another terminal."""
        lines = [f"In another terminal:  export PAUSEGATE_CONFIG={self.config_path} PAUSEGATE_API_URL={self.api_url}"]
        if self.admin_token:
            lines += [
                "First administrator (incident commander) token, shown once:",
                f"  export PAUSEGATE_TOKEN={self.admin_token}",
            ]
        else:
            lines.append("Use the token you were given (pausegate users add NAME --role ROLE creates more).")
        lines.append("Then:  pausegate pause employee-telemetry --reason 'telemetry readable company-wide'")
        return lines

    def describe(self) -> dict[str, str]:
        described = {
            "temporal": self.settings.temporal.address,
            "fleet": self.fleet.url,
            "chat": self.chat.url,
            "postgres": self.database_dsn,
            "api": self.api_url,
            "api-docs": f"{self.api_url}/docs",
            "config": str(self.config_path),
            "evidence": str(self.settings.evidence.directory),
        }
        if self.ui_url:
            described["temporal-ui"] = self.ui_url
        if self.settings.encryption is not None:  # history is ciphertext; this decodes it for history readers
            described["codec"] = f"{self.api_url}/codec"
        return described


def prepare_database(admin_dsn: str, database: str, *, employees: int) -> str:
    """Create ``database`` with the worked example's dataset the first time; returns its DSN.

    Seeding happens once: seeding again would re-grant the leaky grants a pause revoked.
    """
    dsn = dsn_for_database(admin_dsn, database)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            return dsn
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
    seed_example(dsn, employees=employees)
    return dsn


def prepare_data_dir(data: Path) -> None:
    """Create the data directory owner-only (0700); an existing one is made owner-only too.

    mkdir's mode is filtered by the umask, never widened, so the directory is never more open than
    0700 while it exists; the chmod makes it exactly 0700 (and tightens one made by an older version).
    """
    data.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        data.mkdir(mode=DIR_MODE)
    os.chmod(data, DIR_MODE)


def postgres_dirs(data: Path) -> tuple[Path, Path]:
    """Where the embedded PostgreSQL keeps its cluster and its statement log.

    Inside the data directory, unless the stack runs as root: PostgreSQL then runs as its own user,
    which must be able to traverse to its cluster (the server package opens every directory above
    it to others), so the cluster lives beside the data directory instead. A cluster created inside
    by an older version stays there, with a warning: the data directory cannot then stay owner-only.
    """
    inside = (data / "pg", data / "pglog")
    if os.geteuid() != 0:
        return inside
    if (data / "pg" / "PG_VERSION").exists():
        log.warning("postgres_inside_data_dir", data_dir=str(data),
                    detail="the embedded PostgreSQL runs as its own user and opens the data directory to reach "
                           "its cluster; move pg/ and pglog/ to a directory beside it to keep it owner-only")
        return inside
    beside = data.parent / f"{data.name}-postgres"
    return beside / "pg", beside / "pglog"


def write_config(path: Path, settings: Settings) -> None:
    """Write ``config.toml`` (it holds the connections' secrets) 0600 from its creation: a new file
    created with O_CREAT|O_EXCL and mode 0600, then renamed over the old one."""
    replace_file(path, dump_settings(settings).encode())


async def _start_temporal(options: StackOptions, data: Path, encryption: EncryptionSettings | None,
                          api_port: int) -> WorkflowEnvironment:
    if options.temporal is not None:
        return options.temporal
    # The Web UI asks the API's codec endpoint to show payloads decrypted (to whoever may read history).
    codec = ["--ui-codec-endpoint", f"http://127.0.0.1:{api_port}/codec"] if encryption and options.ui_port else []
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_database_filename=str(data / "temporal.db"),
        data_converter=data_converter_for(encryption),
        port=options.temporal_port,
        ui=options.ui_port is not None,
        ui_port=options.ui_port,
        dev_server_log_level="error",
        dev_server_extra_args=codec,
    )


def _history_encryption(options: StackOptions, data: Path) -> EncryptionSettings | None:
    if options.temporal is not None:  # a server someone else started: its clients' keys
        codec = codec_of(options.temporal.client.data_converter)
        return codec.keyring.to_settings() if codec else None
    if not options.encrypt_history:
        return None
    ui_origin = f"http://127.0.0.1:{options.ui_port}" if options.ui_port else None
    return embedded_encryption(data, data / "config.toml", ui_origin=ui_origin)


def _free_port() -> int:
    # The UI is told the codec endpoint's URL before the API starts; a port asked of the OS now is
    # free unless something takes it in the moment between.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_stack(options: StackOptions) -> AsyncIterator[RunningStack]:
    """Start every part of the embedded stack for the duration of the block."""
    data = options.data_dir.resolve()
    prepare_data_dir(data)
    pgdata, pglog = postgres_dirs(data)
    admin_dsn, server = start_logging_postgres(pgdata, pglog, keep=True)
    database_dsn = prepare_database(admin_dsn, EXAMPLE_DATABASE, employees=options.employees)

    async with contextlib.AsyncExitStack() as parts:
        parts.callback(stop_postgres, server)
        encryption = _history_encryption(options, data)
        api_port = options.api_port or (_free_port() if encryption and options.ui_port else 0)
        temporal = await _start_temporal(options, data, encryption, api_port)
        owns_temporal = options.temporal is None
        if owns_temporal:
            parts.push_async_callback(temporal.shutdown)
        fleet = await parts.enter_async_context(serve_fleet(FleetSettings(
            programs=[options.program],
            agents=options.agents,
            employees=options.employees,
            offline_agents=options.offline_agents,
            telemetry_dsn=dsn_as(database_dsn, "telemetry_ingest"),  # type: ignore[arg-type]
            tick_seconds=options.telemetry_tick_seconds,
            faults=FaultSettings(latency_ms=options.fleet_latency_ms, jitter_ms=options.fleet_jitter_ms),
            state_file=data / "fleet-state.json",
        ), port=options.fleet_port))
        chat = await parts.enter_async_context(RunningSink(ChatSink(), port=options.chat_port))
        if options.browse_seconds is not None:  # so that the walk-through's who-saw-what names someone
            await parts.enter_async_context(
                browsing(lambda role: dsn_as(database_dsn, role), options.employees, options.browse_seconds))
        settings = Settings(
            temporal=TemporalSettings(
                address=temporal.client.service_client.config.target_host, task_queue=options.task_queue
            ),
            api=ApiSettings(port=api_port, runbooks_dir=options.runbooks_dir.resolve(),
                            users_file=data / "users.json", refusal_log=data / "api-refusals.jsonl",
                            # users, refusals, rate limits, update slots: in a database of their own
                            state="postgres", state_db=await asyncio.to_thread(prepare_state_database, admin_dsn)),
            evidence=EvidenceSettings(
                directory=data / "evidence",
                signing_key=data / "keys" / "evidence.pem",
                signing_key_fingerprint=pinned_fingerprint(data / "config.toml", data / "keys" / "evidence.pem"),
            ),
            connections={
                "telemetry-db": PostgresConnection(dsn=database_dsn, log_dir=pglog),  # type: ignore[arg-type]
                "telemetry-fleet": FleetConnection(url=fleet.url),
                "slack-security": WebhookConnection(url=chat.hook_url("security")),  # type: ignore[arg-type]
            },
            encryption=encryption,
            # One version at a time: the stack's worker is the current version (docs/deployment.md).
            versioning=VersioningSettings(enabled=True, promote="always"),
        )
        config_path = data / "config.toml"
        write_config(config_path, settings)
        connectors = Connectors(settings)
        parts.push_async_callback(connectors.aclose)
        # Through the users' change log, like every later change: the first line of the log.
        assert settings.evidence.signing_key is not None
        admin_token = await asyncio.to_thread(
            ensure_first_admin, settings, load_or_create_signing_key(settings.evidence.signing_key))
        setup_tracing(settings.observability, "embedded")
        client = await connect(settings.temporal, settings.encryption)  # traced, like a deployment's clients
        api_url = await parts.enter_async_context(
            serve(settings, client, port=api_port, evidence_store=connectors.evidence_store)
        )
        urgent = proof = None
        if options.run_worker:
            # The workflows here, beside the API (a pause started through it begins at once, eagerly); the
            # urgent steps and the proof steps each in a process of their own, so neither a workflow task
            # nor a halt ever waits behind another pause's sealing.
            await parts.enter_async_context(build_worker(client, connectors, role=WorkerRole.WORKFLOWS))
            await promote(client, settings.versioning, [settings.temporal.task_queue])
            await adopt_stranded_pauses(client, settings.versioning, settings.temporal.task_queue)
            urgent = await parts.enter_async_context(
                worker_process(config_path, data / "urgent-worker.log", WorkerRole.URGENT))
            proof = await parts.enter_async_context(
                worker_process(config_path, data / "proof-worker.log", WorkerRole.PROOF))
        yield RunningStack(
            settings=settings,
            config_path=config_path,
            temporal=temporal,
            fleet=fleet,
            chat=chat,
            postgres_dsn=admin_dsn,
            database_dsn=database_dsn,
            ui_url=f"http://127.0.0.1:{options.ui_port}" if owns_temporal and options.ui_port else None,
            connectors=connectors,
            api_url=api_url,
            admin_token=admin_token,
            urgent_worker=urgent,
            proof_worker=proof,
        )
