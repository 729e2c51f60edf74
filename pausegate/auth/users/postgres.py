"""Local users in the shared state database: every replica sees a change the moment it commits.

The same rules as the users file (``pausegate.auth.local``, ``pausegate.auth.directory``): a token is
shown once and only its SHA-256 kept; every change is a line of the users' signed change log, with the
digest of the users as they are after it; a difference between the users and what the log's newest
line says is found and recorded as ``users_file.changed_outside_api``. Here a change to the users and
its line are one transaction, under the log's head lock, so two replicas never interleave them.

Each user row is also signed with the deployment's evidence key: a row inserted or edited directly in
the database (a role added, a token hash swapped) proves nobody at sign-in, besides being recorded as
a change made outside the API the next time the log is read or changed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from pausegate.api.errors import StateUnavailable
from pausegate.auth.base import AuthenticationError
from pausegate.auth.directory import (
    UserLogView,
    _bounded,
    _delta,
    _differences,
    _state,
)
from pausegate.auth.local import (
    FIRST_ADMIN,
    FIRST_ADMIN_ROLES,
    TOKEN_PREFIX,
    LocalUser,
    UnknownUser,
    UserExists,
    _digest,
    check_user,
    local_actor_id,
)
from pausegate.auth.user_log import ABSENT, OUTSIDE, Action, UserChange, UserDelta
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import canonical_json, sha256_hex
from pausegate.models.pause import SYSTEM_ACTOR, Actor
from pausegate.policy import authority
from pausegate.state.chain import PgChain
from pausegate.state.database import StateDatabase

log = structlog.get_logger(__name__)

LOG_NAME = "users"
_MAX_BY_ROLES = 50
_COLUMNS = "name, roles, token_sha256, created_at, signature"


def signed_part(user: LocalUser) -> bytes:
    return canonical_json(user.model_dump(mode="json"))


def _user(row: tuple[Any, ...]) -> tuple[LocalUser, str]:
    user = LocalUser(name=row[0], roles=list(row[1]), token_sha256=row[2], created_at=row[3].astimezone(UTC))
    return user, str(row[4])


def users_digest(users: list[LocalUser]) -> str:
    """The digest the change log records of the users after a change (ABSENT: nobody)."""
    if not users:
        return ABSENT
    ordered = sorted(users, key=lambda u: u.name)
    return sha256_hex(canonical_json([u.model_dump(mode="json") for u in ordered]))


class RowSignatures:
    """Signs user rows and checks them, remembering rows already checked (they repeat on every request)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key()
        self._checked: dict[tuple[bytes, str], bool] = {}

    def sign(self, user: LocalUser) -> str:
        return base64.b64encode(self._key.sign(signed_part(user))).decode()

    def valid(self, user: LocalUser, signature: str) -> bool:
        part = signed_part(user)
        known = self._checked.get((part, signature))
        if known is not None:
            return known
        try:
            ok = keymod.verify_signature(self._public, base64.b64decode(signature, validate=True), part)
        except ValueError:
            ok = False
        if len(self._checked) >= 10_000:
            self._checked.clear()
        self._checked[(part, signature)] = ok
        return ok


class PgUserDirectory:
    """``UserDirectory``'s interface over the shared database (blocking: callers run it in a thread)."""

    def __init__(self, db: StateDatabase, key: Ed25519PrivateKey) -> None:
        self.db = db
        self.chain = PgChain(LOG_NAME, key)
        self.signatures = RowSignatures(key)

    # ------------------------------------------------------------ reading

    def users(self) -> list[LocalUser]:
        with self.db.sync_pool.connection() as conn:
            return [u for u, _ in self._rows(conn)]

    def view(self, limit: int) -> UserLogView:
        """The newest ``limit`` entries, after checking the users against the log."""
        self.check()
        with self.db.sync_pool.connection() as conn:
            entries = list(self.chain.entries(conn, UserChange.model_validate))
            problems = self.chain.problems(conn, UserChange.model_validate, "a user change")
            digest = users_digest([u for u, _ in self._rows(conn)])
        return UserLogView(
            entries=entries[-limit:],
            chain_problems=problems,
            outside_changes=sum(1 for e in entries if e.action == OUTSIDE),
            users_sha256=digest,
        )

    def problems(self) -> list[str]:
        with self.db.sync_pool.connection() as conn:
            return self.chain.problems(conn, UserChange.model_validate, "a user change")

    def check(self) -> UserChange | None:
        """Compare the users with the log now; a difference is recorded (and returned)."""
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            return self._reconcile(conn, head)

    # ------------------------------------------------------------ changing

    def issue(self, by: Actor | None, name: str, roles: list[str], *, replace: bool = False) -> tuple[LocalUser, str]:
        """Add (or replace) a user; returns them and their token, shown once."""
        check_user(name, roles)
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            self._reconcile(conn, head)
            current = self._rows(conn)
            existed = any(u.name == name for u, _ in current)
            if existed and not replace:
                raise UserExists(f"user {name!r} already exists (replace it to issue a new token)")
            if existed:
                self._admins_remain(current, name, sorted(set(roles)),
                                    f"replacing {name} with roles {', '.join(roles)}")
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            user = LocalUser(name=name, roles=sorted(set(roles)), token_sha256=_digest(token),
                             created_at=datetime.now(UTC))
            conn.execute(
                f"INSERT INTO api_users ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "roles = EXCLUDED.roles, token_sha256 = EXCLUDED.token_sha256, created_at = EXCLUDED.created_at, "
                "signature = EXCLUDED.signature",
                (user.name, user.roles, user.token_sha256, user.created_at, self.signatures.sign(user)),
            )
            action: Action = "user.replaced" if existed else "user.added"
            self._record(conn, head, by, action, [_delta(user)], f"{name} with roles {', '.join(user.roles)}")
        return user, token

    def set_roles(self, by: Actor | None, name: str, roles: list[str]) -> LocalUser:
        check_user(name, roles)
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            self._reconcile(conn, head)
            current = self._rows(conn)
            before = self._named(current, name)
            after = sorted(set(roles))
            self._admins_remain(current, name, after, f"giving {name} roles {', '.join(after)}")
            user = before.model_copy(update={"roles": after})
            conn.execute("UPDATE api_users SET roles = %s, signature = %s WHERE name = %s",
                         (user.roles, self.signatures.sign(user), name))
            self._record(conn, head, by, "user.roles_changed", [_delta(user)],
                         f"{name}: {', '.join(before.roles)} -> {', '.join(user.roles)}")
        return user

    def remove(self, by: Actor | None, name: str) -> LocalUser:
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            self._reconcile(conn, head)
            current = self._rows(conn)
            user = self._named(current, name)
            self._admins_remain(current, name, None, f"removing {name}")
            conn.execute("DELETE FROM api_users WHERE name = %s", (name,))
            self._record(conn, head, by, "user.removed", [UserDelta(name=name, roles=None)], f"{name} removed")
        return user

    def ensure_first_admin(self, *, name: str = FIRST_ADMIN, roles: tuple[str, ...] = FIRST_ADMIN_ROLES) -> str | None:
        """Create (and record) the first administrator when there are no users; their token, or None."""
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            self._reconcile(conn, head)
            if self._rows(conn):
                return None
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            user = LocalUser(name=name, roles=sorted(set(roles)), token_sha256=_digest(token),
                             created_at=datetime.now(UTC))
            conn.execute(f"INSERT INTO api_users ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                         (user.name, user.roles, user.token_sha256, user.created_at, self.signatures.sign(user)))
            self._record(conn, head, None, "user.added", [_delta(user)], f"first administrator {name}")
        return token

    def import_users(self, users: list[LocalUser], source: str) -> int:
        """Bring the users of a single-process deployment (its users file) into an empty store, token
        hashes and all, so their tokens keep working; each is a ``user.added`` line naming ``source``.
        Returns how many were imported (none when the store has users already)."""
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            self._reconcile(conn, head)
            if self._rows(conn):
                return 0
            for user in sorted(users, key=lambda u: u.name):
                conn.execute(f"INSERT INTO api_users ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                             (user.name, sorted(set(user.roles)), user.token_sha256, user.created_at,
                              self.signatures.sign(user.model_copy(update={"roles": sorted(set(user.roles))}))))
                self._record(conn, head, None, "user.added", [_delta(user)],
                             f"{user.name} with roles {', '.join(user.roles)}, imported from {source}"[:2000])
        return len(users)

    # ------------------------------------------------------------ internals

    @staticmethod
    def _rows(conn: psycopg.Connection[Any]) -> list[tuple[LocalUser, str]]:
        return [_user(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_users ORDER BY name").fetchall()]

    @staticmethod
    def _named(rows: list[tuple[LocalUser, str]], name: str) -> LocalUser:
        found = next((u for u, _ in rows if u.name == name), None)
        if found is None:
            raise UnknownUser(name)
        return found

    @staticmethod
    def _admins_remain(rows: list[tuple[LocalUser, str]], name: str, roles: list[str] | None, what: str) -> None:
        before = {u.name: list(u.roles) for u, _ in rows}
        after = {n: r for n, r in before.items() if n != name}
        if roles is not None:
            after[name] = roles

        def admins(users: dict[str, list[str]]) -> list[str]:
            return [local_actor_id(n) for n, held in users.items() if authority.ADMIN_ROLE in held]

        authority.require_an_admin_remains(admins(before), admins(after), what)

    def _record(self, conn: psycopg.Connection[Any], head: Any, by: Actor | None, action: Action,
                changes: list[UserDelta], detail: str) -> UserChange:
        digest = users_digest([u for u, _ in self._rows(conn)])
        entry = self.chain.append(conn, head, lambda prev: UserChange(
            at=datetime.now(UTC),
            by=by.id if by is not None else SYSTEM_ACTOR,
            by_roles=[r[:200] for r in (by.roles if by is not None else [])][:_MAX_BY_ROLES],
            action=action, changes=changes, detail=detail[:2000], users_sha256=digest, prev=prev,
        ))
        log.info("users_changed", action=action, by=entry.by, users=[c.name for c in changes])
        return entry

    def _reconcile(self, conn: psycopg.Connection[Any], head: Any) -> UserChange | None:
        """Under the head lock: record the users' difference from the log's newest line, if any."""
        rows = self._rows(conn)
        digest = users_digest([u for u, _ in rows])
        _, last = self.chain.last_line(conn)
        newest: UserChange | None = None
        if last is not None:
            with contextlib.suppress(ValueError, ValidationError):
                newest = UserChange.model_validate(json.loads(last))
        expected = newest.users_sha256 if newest is not None else ABSENT
        forged = [u.name for u, signature in rows if not self.signatures.valid(u, signature)]
        if digest == expected:
            if forged:  # only a signature column changed: the users are as recorded, but those rows prove nobody
                log.error("user_rows_not_signed", users=forged[:20])
            return None
        entries = list(self.chain.entries(conn, UserChange.model_validate))
        known = _state(entries)
        now = {u.name: _delta(u) for u, _ in rows}
        deltas, phrases = _differences(known, now)
        phrases = phrases or ["the rows differ, the users and roles do not"]
        if forged:
            phrases.append(f"not signed by the deployment (refused at sign-in): {', '.join(forged[:20])}")
        if not entries:
            phrases.insert(0, "no change was recorded before")
        kept, truncated = _bounded(deltas)
        detail = "; ".join(phrases)
        log.error("users_changed_outside_the_api", store="postgres", expected_sha256=expected,
                  found_sha256=digest, detail=detail[:500])
        return self.chain.append(conn, head, lambda prev: UserChange(
            at=datetime.now(UTC), by=SYSTEM_ACTOR, action=OUTSIDE, changes=kept, truncated=truncated,
            detail=detail[:2000], users_sha256=digest, prev=prev,
        ))


class PgTokens:
    """Local tokens checked against the shared database on every request: a user added, a role changed
    or a user removed on any replica holds on every replica from the next request. A row the deployment
    did not sign proves nobody."""

    def __init__(self, db: StateDatabase, key: Ed25519PrivateKey | Callable[[], Ed25519PrivateKey]) -> None:
        self.db = db
        # A callable is called on first use: building the API must not touch the evidence directory.
        self._key = key
        self._signatures: RowSignatures | None = None

    @property
    def signatures(self) -> RowSignatures:
        if self._signatures is None:
            key = self._key if isinstance(self._key, Ed25519PrivateKey) else self._key()
            self._signatures = RowSignatures(key)
        return self._signatures

    async def authenticate(self, token: str) -> Actor:
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationError("not a local token")
        try:
            pool = await self.db.async_pool()
            async with pool.connection() as conn:
                cursor = await conn.execute(f"SELECT {_COLUMNS} FROM api_users WHERE token_sha256 = %s",
                                            (_digest(token),))
                row = await cursor.fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            log.error("users_store_unavailable", error=str(exc)[:300])
            raise StateUnavailable() from None
        if row is None:
            raise AuthenticationError("unknown token")
        user, signature = _user(tuple(row))  # type: ignore[arg-type]
        if not self.signatures.valid(user, signature):
            log.error("user_row_not_signed", user=user.name[:200],
                      detail="a user row changed outside the API: it proves nobody")
            raise AuthenticationError("unknown token")
        return user.actor()
