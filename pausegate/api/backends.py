"""Where the API keeps its records, chosen once from the configuration (``api.state``).

``files`` (one API process): users in the users file with their change log beside it, refusals in the
refusal log file, rate limits in memory, update slots in the limiter alone. ``postgres`` (any number of
replicas): all of them in the API's database (``pausegate.apidb``), shared by every replica. Nothing
else reads ``api.state``: the app, the authenticator and the embedded stack take what ``open_backends``
returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.limits import ActionLimits
from pausegate.api.rate_limits.limiter import RateLimiter
from pausegate.api.rate_limits.memory import ActionRateLimiter
from pausegate.api.rate_limits.postgres import PgRateLimiter
from pausegate.api.refusal_log import LOG_NAME, RefusalLog
from pausegate.api.update_slots import SharedSlots
from pausegate.apidb.database import ApiDatabase
from pausegate.auth.base import Authenticator
from pausegate.auth.local import LocalTokens
from pausegate.auth.users.file import UserDirectory, UsersFileCheck
from pausegate.auth.users.postgres import PgTokens, PgUserDirectory, import_users_file
from pausegate.auth.users.store import UserStore
from pausegate.config import Settings
from pausegate.records.postgres import PgMedium


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

    async def open(self) -> None:
        """Migrate and connect (a replica without its database does not start)."""
        if self.database is not None:
            await self.database.open()

    async def close(self) -> None:
        """Give back the update slots still held, then close the database's pools."""
        if self.slots is not None:
            await self.slots.stop()
        if self.database is not None:
            await self.database.close()


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

        key = signing_key or (lambda: open_evidence_store(settings.evidence).signing_key)
        return Backends(
            tokens=PgTokens(db, key),
            rate_limiter=PgRateLimiter(db, limits.rate_per_second, limits.burst),
            users=lambda signer: PgUserDirectory(db, signer),
            refusals=lambda signer: RefusalLog(PgMedium(lambda: db.sync_pool.connection(), LOG_NAME), signer),
            slots=SharedSlots(db, api.max_updates_in_flight_per_pause, lease_seconds=db.settings.slot_lease_seconds),
            database=db,
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
