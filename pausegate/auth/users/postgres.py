"""Local users in the API's database, shared by every replica: a change holds everywhere the moment it commits.

The same rules as the users file (``pausegate.auth.users.store``): a token is shown once and only its
SHA-256 kept; every change is a line of the users' signed change log (the ``users`` log of the database),
with the digest of the users as they are after it; a difference between the users and what the log's
newest line says is found and recorded as ``users_file.changed_outside_api``. Here a change to the users
and its line are one transaction, under the log's head lock, so two replicas never interleave them.

Each user row is also signed with the deployment's evidence key: a row inserted or edited directly in
the database (a role added, a token hash swapped) proves nobody at sign-in, besides being recorded as
a change made outside the API the next time the log is read or changed.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg_pool import PoolTimeout

from pausegate.apidb.database import ApiDatabase
from pausegate.auth.base import AuthenticationError
from pausegate.auth.local import (
    FIRST_ADMIN,
    FIRST_ADMIN_ROLES,
    TOKEN_PREFIX,
    LocalUser,
    UnknownUser,
    UserExists,
    check_user,
    token_digest,
)
from pausegate.auth.users.file import UserDirectory
from pausegate.auth.users.log import ABSENT, LOG_NAME, OUTSIDE, Action, UserChange, UserDelta, user_log
from pausegate.auth.users.store import change_entry, delta, outside_change, require_admins_remain
from pausegate.auth.users.views import UserLogView
from pausegate.auth.users.vouched import MAX_UNVOUCHED, Vouched, vouched
from pausegate.canonical import canonical_json, sha256_hex
from pausegate.errors import StateUnavailable
from pausegate.evidence import signing_keys as keymod
from pausegate.models.people import Actor
from pausegate.records.anchors import HeadAnchors
from pausegate.records.chain import GENESIS, ChainHead
from pausegate.records.log import Appending, ChainLog
from pausegate.records.postgres import PgMedium

log = structlog.get_logger(__name__)

_COLUMNS = "name, roles, token_sha256, created_at, signature"
_UPSERT = (
    f"INSERT INTO api_users ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
    "roles = EXCLUDED.roles, token_sha256 = EXCLUDED.token_sha256, created_at = EXCLUDED.created_at, "
    "signature = EXCLUDED.signature"
)
_INSERT = f"INSERT INTO api_users ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s)"

Rows = list[tuple[LocalUser, str]]
"""Users as stored, each with its row's signature."""


def users_digest(users: list[LocalUser]) -> str:
    """The digest the change log records of the users after a change (ABSENT: nobody)."""
    if not users:
        return ABSENT
    ordered = sorted(users, key=lambda u: u.name)
    return sha256_hex(canonical_json([u.model_dump(mode="json") for u in ordered]))


# ---------------------------------------------------------------- row signing


ROW_DOMAIN = b"pausegate/user-row\0"
"""What a user row's signed message starts with, so that no other message the deployment's key signs
can be taken for a row, nor a row for anything else."""


def signed_part(user: LocalUser) -> bytes:
    """What a user row's signature covers: the user, as canonical JSON (under ``ROW_DOMAIN`` since rows
    carried it; rows signed before, over the JSON alone)."""
    return canonical_json(user.model_dump(mode="json"))


class RowSignatures:
    """Signs user rows and checks them, remembering rows already checked (they repeat on every request)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key()
        self._checked: dict[tuple[bytes, str], bool] = {}

    def sign(self, user: LocalUser) -> str:
        return base64.b64encode(self._key.sign(ROW_DOMAIN + signed_part(user))).decode()

    def valid(self, user: LocalUser, signature: str) -> bool:
        """Whether the deployment signed this row: under ``ROW_DOMAIN``, or as a row signed before rows
        carried it. A row proves someone only where the signed users log vouches for it as well
        (``authenticate``), which holds an old row signed in the bare form to the record too."""
        part = signed_part(user)
        known = self._checked.get((part, signature))
        if known is not None:
            return known
        try:
            raw = base64.b64decode(signature, validate=True)
        except ValueError:
            ok = False
        else:
            ok = keymod.verify_signature(self.public, raw, ROW_DOMAIN + part) or keymod.verify_signature(
                self.public, raw, part)
        if len(self._checked) >= 10_000:
            self._checked.clear()
        self._checked[(part, signature)] = ok
        return ok


def _user(row: tuple[Any, ...]) -> tuple[LocalUser, str]:
    user = LocalUser(name=row[0], roles=list(row[1]), token_sha256=row[2], created_at=row[3].astimezone(UTC))
    return user, str(row[4])


def _rows(conn: psycopg.Connection[Any]) -> Rows:
    return [_user(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_users ORDER BY name").fetchall()]


def _named(rows: Rows, name: str) -> LocalUser:
    found = next((u for u, _ in rows if u.name == name), None)
    if found is None:
        raise UnknownUser(name)
    return found


def _new_user(name: str, roles: list[str] | tuple[str, ...]) -> tuple[LocalUser, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return LocalUser(name=name, roles=sorted(set(roles)), token_sha256=token_digest(token),
                     created_at=datetime.now(UTC)), token


# ---------------------------------------------------------------- the store


class _Held:
    """One change's transaction: its connection, and the change log held in it."""

    def __init__(self, conn: psycopg.Connection[Any], log: ChainLog[UserChange], appending: Appending[UserChange]):
        self.conn = conn
        self.log = log
        self.appending = appending


class PgUserDirectory:
    """The users in the API's database and their change log there (a ``pausegate.auth.users.store.UserStore``;
    blocking: callers run it in a thread)."""

    def __init__(self, db: ApiDatabase, key: Ed25519PrivateKey, *, anchors: HeadAnchors | None = None) -> None:
        self.db = db
        self.key = key
        self.signatures = RowSignatures(key)
        self.anchor = anchors.log(LOG_NAME) if anchors is not None else None

    def _log(self, conn: psycopg.Connection[Any]) -> ChainLog[UserChange]:
        return user_log(PgMedium.on(conn, LOG_NAME), self.key, anchor=self.anchor)

    @contextmanager
    def _change(self) -> Iterator[_Held]:
        """A transaction holding the change log, the users reconciled with it first; the new head is
        anchored once the transaction committed."""
        with self.db.sync_pool.connection() as conn:
            with conn.transaction():
                chain = self._log(conn)
                with chain.held() as appending:
                    held = _Held(conn, chain, appending)
                    self._reconcile(held)
                    yield held
            chain.anchor_signed(appending.signed)

    # ------------------------------------------------------------ reading

    def users(self) -> list[LocalUser]:
        with self.db.sync_pool.connection() as conn:
            return [u for u, _ in _rows(conn)]

    def view(self, limit: int) -> UserLogView:
        """The newest ``limit`` entries, after checking the users against the log."""
        self.check()
        with self.db.sync_pool.connection() as conn:
            chain = self._log(conn)
            entries = list(chain.entries())
            problems = chain.problems()
            digest = users_digest([u for u, _ in _rows(conn)])
        return UserLogView(
            entries=entries[-limit:],
            chain_problems=problems,
            outside_changes=sum(1 for e in entries if e.action == OUTSIDE),
            users_sha256=digest,
        )

    def problems(self) -> list[str]:
        with self.db.sync_pool.connection() as conn:
            return self._log(conn).problems()

    def check(self) -> UserChange | None:
        """Compare the users with the log now; a difference is recorded (and returned)."""
        with self.db.sync_pool.connection() as conn:
            with conn.transaction():
                chain = self._log(conn)
                with chain.held() as appending:
                    change = self._reconcile(_Held(conn, chain, appending))
            chain.anchor_signed(appending.signed)
        return change

    # ------------------------------------------------------------ changing

    def issue(self, by: Actor | None, name: str, roles: list[str], *, replace: bool = False) -> tuple[LocalUser, str]:
        """Add (or replace) a user; returns them and their token, shown once."""
        check_user(name, roles)
        with self._change() as held:
            current = _rows(held.conn)
            existed = any(u.name == name for u, _ in current)
            if existed and not replace:
                raise UserExists(f"user {name!r} already exists (replace it to issue a new token)")
            if existed:
                require_admins_remain((u for u, _ in current), name, sorted(set(roles)),
                                      f"replacing {name} with roles {', '.join(roles)}")
            user, token = _new_user(name, roles)
            held.conn.execute(_UPSERT, (user.name, user.roles, user.token_sha256, user.created_at,
                                        self.signatures.sign(user)))
            action: Action = "user.replaced" if existed else "user.added"
            self._record(held, by, action, [delta(user)], f"{name} with roles {', '.join(user.roles)}")
        return user, token

    def set_roles(self, by: Actor | None, name: str, roles: list[str]) -> LocalUser:
        check_user(name, roles)
        with self._change() as held:
            current = _rows(held.conn)
            before = _named(current, name)
            after = sorted(set(roles))
            require_admins_remain((u for u, _ in current), name, after, f"giving {name} roles {', '.join(after)}")
            user = before.model_copy(update={"roles": after})
            held.conn.execute("UPDATE api_users SET roles = %s, signature = %s WHERE name = %s",
                              (user.roles, self.signatures.sign(user), name))
            self._record(held, by, "user.roles_changed", [delta(user)],
                         f"{name}: {', '.join(before.roles)} -> {', '.join(user.roles)}")
        return user

    def remove(self, by: Actor | None, name: str) -> LocalUser:
        with self._change() as held:
            current = _rows(held.conn)
            user = _named(current, name)
            require_admins_remain((u for u, _ in current), name, None, f"removing {name}")
            held.conn.execute("DELETE FROM api_users WHERE name = %s", (name,))
            self._record(held, by, "user.removed", [UserDelta(name=name, roles=None)], f"{name} removed")
        return user

    def ensure_first_admin(self, *, name: str = FIRST_ADMIN, roles: tuple[str, ...] = FIRST_ADMIN_ROLES) -> str | None:
        """Create (and record) the first administrator when there are no users; their token, or None."""
        with self._change() as held:
            if _rows(held.conn):
                return None
            user, token = _new_user(name, roles)
            held.conn.execute(_INSERT, (user.name, user.roles, user.token_sha256, user.created_at,
                                        self.signatures.sign(user)))
            self._record(held, None, "user.added", [delta(user)], f"first administrator {name}")
        return token

    def import_users(self, users: list[LocalUser], source: str) -> int:
        """Bring the users of a single-process deployment (its users file) into an empty store, token
        hashes and all, so their tokens keep working; each is a ``user.added`` line naming ``source``.
        Returns how many were imported (none when the store has users already)."""
        with self._change() as held:
            if _rows(held.conn):
                return 0
            for user in sorted(users, key=lambda u: u.name):
                stored = user.model_copy(update={"roles": sorted(set(user.roles))})
                held.conn.execute(_INSERT, (stored.name, stored.roles, stored.token_sha256, stored.created_at,
                                            self.signatures.sign(stored)))
                self._record(held, None, "user.added", [delta(user)],
                             f"{user.name} with roles {', '.join(user.roles)}, imported from {source}"[:2000])
        return len(users)

    # ------------------------------------------------------------ internals

    def _record(self, held: _Held, by: Actor | None, action: Action, changes: list[UserDelta],
                detail: str) -> UserChange:
        digest = users_digest([u for u, _ in _rows(held.conn)])
        entry = held.appending.append(change_entry(by, action, changes, detail, digest))
        log.info("users_changed", action=action, by=entry.by, users=[c.name for c in changes])
        return entry

    def _reconcile(self, held: _Held) -> UserChange | None:
        """Under the head lock: record the users' difference from the log's newest line, if any."""
        rows = _rows(held.conn)
        digest = users_digest([u for u, _ in rows])
        newest = held.appending.last()
        expected = newest.users_sha256 if newest is not None else ABSENT
        forged = [u.name for u, signature in rows if not self.signatures.valid(u, signature)]
        if digest == expected:
            if forged:  # only a signature column changed: the users are as recorded, but those rows prove nobody
                log.error("user_rows_not_signed", users=forged[:20])
            return None
        signed = [f"not signed by the deployment (refused at sign-in): {', '.join(forged[:20])}"] if forged else []
        change = outside_change(list(held.log.entries()), {u.name: delta(u) for u, _ in rows},
                                same="the rows differ, the users and roles do not", last=signed)
        log.error("users_changed_outside_the_api", store="postgres", expected_sha256=expected,
                  found_sha256=digest, detail=change.detail[:500])
        return held.appending.append(change.entry(digest))


def import_users_file(users_file: Path, store: PgUserDirectory, key: Ed25519PrivateKey) -> int:
    """A data directory from before the API's database: its users (and their tokens) move into the empty
    store once; the users file and its signed log stay where they are, as the record of what came before.
    A file that its own change log does not vouch for is not imported (its problems are logged)."""
    if not users_file.exists():
        return 0
    old = UserDirectory(users_file, key)
    changed = old.check()  # a hand edit since the last recorded change is recorded there, and not carried over
    problems = old.problems()
    if problems or changed is not None:
        log.error("users_file_not_imported", path=str(users_file), problems=problems[:10],
                  changed_outside_the_api=changed is not None)
        return 0
    imported = store.import_users(old.users(), users_file.name)
    if imported:
        log.warning("users_file_imported", path=str(users_file), users=imported,
                    detail="users now live in the API's database; the file is no longer read")
    return imported


_HEAD = (
    "SELECT h.lines, h.last, h.breaks, h.key_sha256, h.signature, "
    "(SELECT max(seq) FROM api_log_lines WHERE log = %(log)s) FROM api_log_heads h WHERE h.log = %(log)s"
)
_VOUCHED_LINES = "SELECT seq, line FROM api_log_lines WHERE log = %(log)s AND seq <= %(lines)s ORDER BY seq"
_LINES_PAST = (
    "SELECT seq, line FROM api_log_lines WHERE log = %(log)s AND seq > %(lines)s ORDER BY seq LIMIT %(limit)s"
)


class PgTokens:
    """Local tokens checked against the API's database on every request: a user added, a role changed
    or a user removed on any replica holds on every replica from the next request. A row proves someone
    only if the deployment signed it and it is as the newest change the users' log vouches for left
    its user (``pausegate.auth.users.vouched``): an older signed row written back proves nobody."""

    def __init__(self, db: ApiDatabase, key: Ed25519PrivateKey | Callable[[], Ed25519PrivateKey]) -> None:
        self.db = db
        # A callable is called on first use: building the API must not touch the evidence directory.
        self._key = key
        self._signatures: RowSignatures | None = None
        self._vouched: Vouched | None = None
        self._read_at: tuple[Any, ...] | None = None
        self._reading = asyncio.Lock()

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
                                            (token_digest(token),))
                row = await cursor.fetchone()
                ledger = await self._ledger(conn) if row is not None else None
        except (psycopg.Error, PoolTimeout) as exc:
            log.error("users_store_unavailable", error=str(exc)[:300])
            raise StateUnavailable() from None
        if row is None or ledger is None:
            raise AuthenticationError("unknown token")
        user, signature = _user(tuple(row))  # type: ignore[arg-type]
        if not self.signatures.valid(user, signature):
            log.error("user_row_not_signed", user=user.name[:200],
                      detail="a user row changed outside the API: it proves nobody")
            raise AuthenticationError("unknown token")
        if not ledger.matches(user):
            log.error("user_row_not_vouched", user=user.name[:200],
                      detail="the user row is not as the newest change in the signed users log left them "
                      "(an older row written back, or a change not yet vouched for): it proves nobody")
            raise AuthenticationError("unknown token")
        return user.actor()

    async def _ledger(self, conn: psycopg.AsyncConnection[Any]) -> Vouched:
        """What the users' log vouches for now, read again only when its head or its newest line changed."""
        head_row = await (await conn.execute(_HEAD, {"log": LOG_NAME})).fetchone()
        at = tuple(head_row) if head_row is not None else None
        if self._vouched is not None and at == self._read_at:
            return self._vouched
        async with self._reading:
            if self._vouched is not None and at == self._read_at:
                return self._vouched
            head = _head(at)
            lines: list[tuple[int, bytes]] = []
            if head is not None:
                params = {"log": LOG_NAME, "lines": head.lines, "limit": MAX_UNVOUCHED + 1}
                for query in (_VOUCHED_LINES, _LINES_PAST):
                    rows = await (await conn.execute(query, params)).fetchall()
                    lines += [(int(r[0]), str(r[1]).encode()) for r in rows]  # type: ignore[index]
            found = vouched(lines, head, self.signatures.public)
            if found.problems:
                log.error("users_log_vouches_for_less", problems=list(found.problems[:10]))
            best = self._vouched
            if best is not None and not best.nobody and (found.nobody or found.lines < best.lines):
                # The head went back, or lost its signature: what it vouched for before still stands,
                # and lines written since (past the head) still take away.
                log.error("users_log_head_went_back", seen=best.lines, now=found.lines)
                found = replace(best, unvouched=best.unvouched | found.unvouched)
            self._vouched, self._read_at = found, at
            return found


def _head(row: tuple[Any, ...] | None) -> ChainHead | None:
    if row is None or row[0] is None:
        return None
    return ChainHead.model_construct(lines=int(row[0]), last=row[1] or GENESIS, breaks=list(row[2] or []),
                                     key_sha256=row[3] or "", signature=row[4] or "")
