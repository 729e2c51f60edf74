"""Which user rows the users' signed change log vouches for: a row proves someone only as the log's
newest change made through the API left them.

A user row is signed by the deployment, but a signature says only that the API once wrote the row,
not that it still stands: a row saved before a demotion, a removal or a new token, and written back by
someone with the API's database role, is signed too. So a row counts only if it matches the newest
line of the change log, made through the API, that names its user (same roles, same token). The
lines that count are the ones the signed head vouches for, chained back from its last line; a chain
break leaves the lines before it vouched for by nothing. A line past the head (nobody signed it) only
ever takes away: a user it names proves nobody until the head covers it, so putting back an older
head to hide a demotion does not give the old roles back either. Changes found made outside the API
(``users_file.changed_outside_api``) describe a store as found, never what the API made, and vouch
for nobody.

Pure: the lines and the head are read by the store (``pausegate.auth.users.postgres``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from pausegate.auth.local import LocalUser
from pausegate.auth.users.log import OUTSIDE, UserChange, UserDelta
from pausegate.records import chain
from pausegate.records.chain import GENESIS, ChainHead

MAX_UNVOUCHED = 1000
"""Lines past the signed head read for the users they name; more than this vouches for nobody."""


@dataclass(frozen=True)
class Vouched:
    """The users as the log's API-made changes left them (roles None: removed), up to its signed head."""

    lines: int = 0
    """The head's line count this was read at."""
    users: dict[str, UserDelta] = field(default_factory=dict)
    unvouched: frozenset[str] = frozenset()
    """Users named by lines past the signed head: they prove nobody until a signed head covers them."""
    problems: tuple[str, ...] = ()
    """Why some or all lines vouch for nobody (logged by the store)."""
    nobody: bool = False
    """Nothing vouches for anyone: no signed head, or too many lines past it."""

    def matches(self, user: LocalUser) -> bool:
        """Whether ``user`` (a row as stored) is as the newest API-made change that names them left them."""
        if self.nobody or user.name in self.unvouched:
            return False
        known = self.users.get(user.name)
        if known is None or known.roles is None:
            return False
        return sorted(set(known.roles)) == sorted(set(user.roles)) and known.credential == user.credential


def vouched(lines: Iterable[tuple[int, bytes]], head: ChainHead | None, key: Ed25519PublicKey) -> Vouched:
    """What the change log's ``lines`` ((seq, line), oldest first, every line there is) vouch for under
    ``head``, which ``key`` must have signed."""
    if head is None or not chain.head_signed(head, key):
        return Vouched(problems=("the change log's head is missing or not signed by the deployment",), nobody=True)
    users: dict[str, UserDelta] = {}
    unvouched: set[str] = set()
    problems: list[str] = []
    last, count, beyond = GENESIS, 0, 0
    for seq, line in lines:
        entry = _entry(line)
        if seq > head.lines:
            beyond += 1
            if beyond > MAX_UNVOUCHED:
                return Vouched(problems=(f"more than {MAX_UNVOUCHED} lines past the signed head",), nobody=True)
            if entry is not None:
                unvouched.update(c.name for c in entry.changes)
            continue
        count += 1
        if seq != count or entry is None or entry.prev != last:
            # Nothing vouches for what came before a break: an edit there would not show at the head.
            problems.append(f"line {seq}: the chain breaks; the changes before it vouch for nobody")
            users = {}
            count = seq
        last = chain.line_digest(line)
        if entry is not None and entry.action != OUTSIDE:
            for change in entry.changes:
                users[change.name] = change
    if (count, last) != (head.lines, head.last):
        return Vouched(problems=(*problems, "the signed head does not end the chain"), nobody=True)
    return Vouched(lines=head.lines, users=users, unvouched=frozenset(unvouched), problems=tuple(problems))


def _entry(line: bytes) -> UserChange | None:
    try:
        return UserChange.model_validate(json.loads(line))
    except (ValueError, ValidationError):
        return None
