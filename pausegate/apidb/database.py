"""The API's shared database as one replica reaches it: its connection pools, and the migrations applied at start.

Two pools over the same DSN: an asyncio pool for what every request does on the event loop
(authenticate, take a rate-limit token, lease an update slot), and a small blocking pool for the
logs and the users' directory, whose callers already run in worker threads (``asyncio.to_thread``)
because the file backend does disk I/O there. Both open lazily, so an app built for its OpenAPI
document never connects, and the migrations run once, before the first connection is handed out.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from types import TracebackType

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from pausegate.apidb.schema import migrate
from pausegate.config import StateDatabaseSettings

log = structlog.get_logger(__name__)

# A request waits at most this long for a connection: in an outage the caller hears 503 soon, not after 30 s.
_WAIT_FOR_CONNECTION = 5.0
_OPTIONS = "-c TimeZone=UTC -c statement_timeout=15000 -c idle_in_transaction_session_timeout=30000"


class ApiDatabase:
    """One replica's way into the database the replicas share (``api.state = "postgres"``)."""

    def __init__(self, settings: StateDatabaseSettings, *, replica: str | None = None) -> None:
        self.settings = settings
        self.replica = replica or f"replica-{uuid.uuid4().hex[:12]}"
        """This process's name in the database (update slots it holds are leased under it)."""
        self._dsn = settings.dsn.get_secret_value()
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._sync: ConnectionPool[psycopg.Connection[object]] | None = None
        self._async: AsyncConnectionPool[psycopg.AsyncConnection[object]] | None = None
        self._async_lock: asyncio.Lock | None = None

    @property
    def dsn(self) -> str:
        """The API role's DSN (a secret: never log it)."""
        return self._dsn

    def connect_kwargs(self) -> dict[str, object]:
        return {"options": _OPTIONS, "application_name": f"pausegate-api {self.replica}"[:63]}

    # ------------------------------------------------------------ schema

    def ensure_schema(self) -> None:
        """Apply the migrations once per process (blocking; idempotent across replicas)."""
        if self._migrated:
            return
        with self._migrate_lock:
            if self._migrated:
                return
            owner = self.settings.owner_dsn
            api_role: str | None = None
            if owner is not None:
                with psycopg.connect(self._dsn, **self.connect_kwargs()) as conn:  # type: ignore[arg-type]
                    row = conn.execute("SELECT current_user").fetchone()
                    api_role = str(row[0]) if row else None
            target = owner.get_secret_value() if owner is not None else self._dsn
            with psycopg.connect(target, autocommit=True, **self.connect_kwargs()) as conn:  # type: ignore[arg-type]
                version = migrate(conn, api_role=api_role)
            log.info("state_database_ready", version=version, replica=self.replica, separate_owner=owner is not None)
            self._migrated = True

    # ------------------------------------------------------------ pools

    @property
    def sync_pool(self) -> ConnectionPool[psycopg.Connection[object]]:
        """The blocking pool (logs, users' directory), opened on first use."""
        if self._sync is None:
            self.ensure_schema()
            with self._migrate_lock:
                if self._sync is None:
                    self._sync = ConnectionPool(
                        self._dsn, min_size=1, max_size=4, open=True, name=f"state-sync-{self.replica}",
                        timeout=_WAIT_FOR_CONNECTION,
                        kwargs={**self.connect_kwargs(), "autocommit": True},
                    )
        return self._sync

    async def async_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[object]]:
        """The asyncio pool (the request path), opened on first use in the running loop."""
        if self._async is not None:
            return self._async
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            if self._async is None:
                await asyncio.to_thread(self.ensure_schema)
                pool: AsyncConnectionPool[psycopg.AsyncConnection[object]] = AsyncConnectionPool(
                    self._dsn, min_size=1, max_size=self.settings.pool_size, timeout=_WAIT_FOR_CONNECTION,
                    kwargs={**self.connect_kwargs(), "autocommit": True}, open=False,
                    name=f"state-async-{self.replica}",
                )
                await pool.open(wait=True, timeout=30.0)
                self._async = pool
        return self._async

    async def open(self) -> None:
        """Migrate and open both pools (the app's start-up; a database that is not there fails it)."""
        await self.async_pool()
        await asyncio.to_thread(lambda: self.sync_pool)

    async def close(self) -> None:
        if self._async is not None:
            await self._async.close()
            self._async = None
        if self._sync is not None:
            await asyncio.to_thread(self._sync.close)
            self._sync = None

    def close_sync(self) -> None:
        """Close the blocking pool (a process that only used it: the embedded stack's first admin)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def __enter__(self) -> ApiDatabase:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_sync()
