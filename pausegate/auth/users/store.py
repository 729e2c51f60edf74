"""What every store of local users offers (``UserStore``), and the rules both stores keep.

Two stores: the users file with its change log beside it (``pausegate.auth.users.file``), and the API's
database, shared by every replica (``pausegate.auth.users.postgres``). Both take the change log's lock
for a change, first compare the users with what the log's newest line says (a difference is recorded
as a change made outside the API, described by ``outside_change``), refuse a change that would leave
no local admin (``require_admins_remain``), then change the users and append the change's line
(``change_entry``) with the users' new digest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pausegate.auth.local import FIRST_ADMIN, FIRST_ADMIN_ROLES, LocalUser, local_actor_id
from pausegate.auth.users.log import OUTSIDE, Action, UserChange, UserDelta
from pausegate.auth.users.views import UserLogView
from pausegate.canonical import canonical_json
from pausegate.models.people import SYSTEM_ACTOR, Actor
from pausegate.policy import authority

MAX_DELTA_BYTES = 32 * 1024
"""The users an outside change lists, at most, so that its line stays small."""
MAX_BY_ROLES = 50


class UserStore(Protocol):
    """Local users and their signed change log (blocking: the API calls it in a worker thread)."""

    def users(self) -> list[LocalUser]:
        """Every local user, by name (hashes only)."""
        ...

    def view(self, limit: int) -> UserLogView:
        """The newest ``limit`` entries of the change log, its problems, after checking the users against it."""
        ...

    def problems(self) -> list[str]:
        """What is wrong with the change log's chain and signed head."""
        ...

    def check(self) -> UserChange | None:
        """Compare the users with the log now; a difference is recorded (and returned)."""
        ...

    def issue(self, by: Actor | None, name: str, roles: list[str], *, replace: bool = False) -> tuple[LocalUser, str]:
        """Add (or, with ``replace``, replace) a user; returns them and their token, shown once."""
        ...

    def set_roles(self, by: Actor | None, name: str, roles: list[str]) -> LocalUser:
        """Give ``name`` exactly ``roles`` (the token stays)."""
        ...

    def remove(self, by: Actor | None, name: str) -> LocalUser:
        """Remove ``name``: their token proves nobody from now on."""
        ...

    def ensure_first_admin(self, *, name: str = FIRST_ADMIN, roles: tuple[str, ...] = FIRST_ADMIN_ROLES) -> str | None:
        """Create (and record) the first administrator when there are no users; their token, or None."""
        ...


# ---------------------------------------------------------------- the last admin remains


def require_admins_remain(users: Iterable[LocalUser], name: str, roles: list[str] | None, what: str) -> None:
    """Refuse (``ActionRefused`` ``last_admin``) giving ``name`` these ``roles`` (None: removing them) if
    it takes the admin role from the last local user who holds it."""
    before = {u.name: list(u.roles) for u in users}
    after = {n: r for n, r in before.items() if n != name}
    if roles is not None:
        after[name] = roles

    def admins(held_by: dict[str, list[str]]) -> list[str]:
        return [local_actor_id(n) for n, held in held_by.items() if authority.ADMIN_ROLE in held]

    authority.require_an_admin_remains(admins(before), admins(after), what)


# ---------------------------------------------------------------- the lines of the change log


def delta(user: LocalUser) -> UserDelta:
    """``user`` as a change leaves them."""
    return UserDelta(name=user.name, roles=sorted(user.roles), credential=user.credential)


def change_entry(by: Actor | None, action: Action, changes: list[UserDelta], detail: str,
                 digest: str) -> Callable[[str], UserChange]:
    """The line of a change ``by`` made (None: the stack itself), given the line before it."""
    return lambda prev: UserChange(
        at=datetime.now(UTC),
        by=by.id if by is not None else SYSTEM_ACTOR,
        by_roles=[r[:200] for r in (by.roles if by is not None else [])][:MAX_BY_ROLES],
        action=action, changes=changes, detail=detail[:2000], users_sha256=digest, prev=prev,
    )


# ---------------------------------------------------------------- a change made outside the API


def described(entries: Iterable[UserChange]) -> dict[str, UserDelta]:
    """The users the log describes: every change applied in order."""
    users: dict[str, UserDelta] = {}
    for entry in entries:
        for change in entry.changes:
            if change.roles is None:
                users.pop(change.name, None)
            else:
                users[change.name] = change
    return users


def differences(known: dict[str, UserDelta], now: dict[str, UserDelta]) -> tuple[list[UserDelta], list[str]]:
    """The users that differ (as they are now; roles None when gone) and a phrase for each."""
    deltas: list[UserDelta] = []
    phrases: list[str] = []
    for name in sorted(known.keys() | now.keys()):
        before, after = known.get(name), now.get(name)
        if before == after:
            continue
        if after is None:
            deltas.append(UserDelta(name=name, roles=None))
            phrases.append(f"{name} removed")
        elif before is None:
            deltas.append(after)
            phrases.append(f"{name} added with roles {', '.join(after.roles or []) or 'none'}")
        else:
            deltas.append(after)
            if before.roles != after.roles:
                phrases.append(f"{name}'s roles {', '.join(before.roles or [])} -> {', '.join(after.roles or [])}")
            if before.credential != after.credential:
                phrases.append(f"{name}'s token replaced")
    return deltas, phrases


def bounded(deltas: list[UserDelta]) -> tuple[list[UserDelta], bool]:
    """The deltas that fit in ``MAX_DELTA_BYTES``, and whether some were left out."""
    kept: list[UserDelta] = []
    size = 0
    for change in deltas:
        size += len(canonical_json(change.model_dump(mode="json")))
        if size > MAX_DELTA_BYTES:
            return kept, True
        kept.append(change)
    return kept, False


@dataclass(frozen=True)
class OutsideChange:
    """A change found made outside the API, as its line describes it."""

    changes: list[UserDelta]
    truncated: bool
    detail: str

    def entry(self, digest: str) -> Callable[[str], UserChange]:
        """Its line, given the line before it: the users found now have the digest ``digest``."""
        return lambda prev: UserChange(
            at=datetime.now(UTC), by=SYSTEM_ACTOR, action=OUTSIDE, changes=self.changes, truncated=self.truncated,
            detail=self.detail[:2000], users_sha256=digest, prev=prev,
        )


def outside_change(entries: list[UserChange], now: dict[str, UserDelta] | None, *, same: str,
                   first: Iterable[str] = (), last: Iterable[str] = ()) -> OutsideChange:
    """How users found differing from the log's newest line are described: what differs from the users
    the log describes (``now`` None: the users could not be read, taken as described), ``same`` when
    only the stored bytes differ, with the store's own notes ``first`` and ``last``."""
    known = described(entries)
    deltas, phrases = differences(known, known if now is None else now)
    phrases = [*first, *(phrases or [same]), *last]
    if not entries:
        phrases.insert(0, "no change was recorded before")
    kept, truncated = bounded(deltas)
    return OutsideChange(kept, truncated, "; ".join(phrases))
