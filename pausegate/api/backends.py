"""Where the API keeps its records, chosen once from the configuration (``api.state``).

``files`` (one API process): users in the users file with their change log beside it, refusals in the
refusal log file, rate limits in memory, update slots in the limiter alone. ``postgres`` (any number of
replicas): all of them in the API's database (``pausegate.apidb``), shared by every replica, the logs'
heads also anchored in the evidence store (``pausegate.records.anchors``) on each append and every
minute, out of the database owner's reach. Nothing
else reads ``api.state``: the app, the authenticator and the embedded stack take what ``open_backends``
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.limits import ActionLimits
from pausegate.api.rate_limits.limiter import RateLimiter
from pausegate.api.rate_limits.memory import ActionRateLimiter
from pausegate.api.rate_limits.postgres import PgRateLimiter
from pausegate.api.refusal_log import LOG_NAME as REFUSALS
from pausegate.api.refusal_log import RefusalLog
from pausegate.api.update_slots import SharedSlots
from pausegate.apidb.database import ApiDatabase
from pausegate.auth.base import Authenticator
from pausegate.auth.local import LocalTokens
from pausegate.auth.users.file import UserDirectory, UsersFileCheck
from pausegate.auth.users.log import LOG_NAME as USERS
from pausegate.auth.users.log import user_log
from pausegate.auth.users.postgres import PgTokens, PgUserDirectory, import_users_file
from pausegate.auth.users.store import UserStore
from pausegate.config import Settings
from pausegate.records.anchors import HeadAnchors
from pausegate.records.postgres import PgMedium

log = structlog.get_logger(__name__)

ANCHOR_EVERY_SECONDS = 60.0


@dataclass
class Backends:
    """The API's records for this deployment (one per replica)."""

    tokens: Authenticator
    """Local tokens (the authenticator's second way in, beside OIDC)."""
    rate_limiter: RateLimiter
    users: Callable[[Ed25519PrivateKey], UserStore]
    """The users and their change log, signed with the deployment's key."""
    refusals: Callable[[Ed25519PrivateKey], RefusalLog]
    """The refusal log, signed with the deployment's key."""
    slots: SharedSlots | None = None
    """Each pause's update slots shared with the other replicas (None: this process is the only one)."""
    database: ApiDatabase | None = None
    """The database shared with the other replicas (None: files)."""
    anchor_heads: Callable[[], None] | None = None
    """Anchor every log's head outside the database (blocking), run every ``ANCHOR_EVERY_SECONDS``."""
    _anchoring: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def open(self) -> None:
        """Migrate and connect (a replica without its database does not start)."""
        if self.database is not None:
            await self.database.open()
        if self.anchor_heads is not None and self._anchoring is None:
            self._anchoring = asyncio.create_task(self._anchor_forever(self.anchor_heads), name="anchor-log-heads")

    async def close(self) -> None:
        """Give back the update slots still held, then close the database's pools."""
        if self._anchoring is not None:
            self._anchoring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._anchoring
            self._anchoring = None
        if self.slots is not None:
            await self.slots.stop()
        if self.database is not None:
            await self.database.close()

    @staticmethod
    async def _anchor_forever(anchor_heads: Callable[[], None]) -> None:
        # Each append anchors its head; this catches the appends whose anchor failed (the store was down).
        while True:
            try:
                await asyncio.to_thread(anchor_heads)
            except Exception as exc:
                log.error("log_heads_not_anchored", error=str(exc)[:300])
            await asyncio.sleep(ANCHOR_EVERY_SECONDS)


def open_backends(
    settings: Settings, limits: ActionLimits | None = None, *,
    signing_key: Callable[[], Ed25519PrivateKey] | None = None,
) -> Backends:
    """The backends ``settings.api.state`` names. ``signing_key``: the deployment's evidence key, read on
    first use (default: from ``settings.evidence``), which the shared users' rows are checked against."""
    limits = limits or ActionLimits()
    api = settings.api
    if api.state == "postgres" and api.state_db is not None:
        db = ApiDatabase(api.state_db)
        from pausegate.evidence.open_store import open_evidence_store

        store = functools.cache(lambda: open_evidence_store(settings.evidence))
        key = signing_key or (lambda: store().signing_key)
        # The logs' heads also go where the database's owner cannot take them back: the evidence store.
        anchors = HeadAnchors(store)

        def refusals(signer: Ed25519PrivateKey) -> RefusalLog:
            return RefusalLog(PgMedium(lambda: db.sync_pool.connection(), REFUSALS), signer,
                              anchor=anchors.log(REFUSALS))

        def anchor_heads() -> None:
            signer = key()
            refusals(signer).chain.anchor_now()
            user_log(PgMedium(lambda: db.sync_pool.connection(), USERS), signer, anchor=anchors.log(USERS)).anchor_now()

        return Backends(
            tokens=PgTokens(db, key),
            rate_limiter=PgRateLimiter(db, limits.rate_per_second, limits.burst),
            users=lambda signer: PgUserDirectory(db, signer, anchors=anchors),
            refusals=refusals,
            slots=SharedSlots(db, api.max_updates_in_flight_per_pause, lease_seconds=db.settings.slot_lease_seconds),
            database=db,
            anchor_heads=anchor_heads,
        )
    return Backends(
        tokens=LocalTokens(api.users_file, on_reload=UsersFileCheck(settings)),
        rate_limiter=ActionRateLimiter(limits.rate_per_second, limits.burst),
        users=lambda signer: UserDirectory(api.users_file, signer),
        refusals=lambda signer: RefusalLog.file(api.refusal_log, signer),
    )


def ensure_first_admin(settings: Settings, key: Ed25519PrivateKey) -> str | None:
    """Create (and record) the first administrator where this deployment keeps its users, when it has
    none; their token, or None. Users of a users file from before the API's database move in first."""
    backends = open_backends(settings, signing_key=lambda: key)
    try:
        users = backends.users(key)
        if isinstance(users, PgUserDirectory):
            import_users_file(settings.api.users_file, users, key)
        return users.ensure_first_admin()
    finally:
        if backends.database is not None:
            backends.database.close_sync()
