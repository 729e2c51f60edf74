"""The signed, append-only record of every change to local users and their roles.

One canonical JSON line per change (who changed which user, to which roles, and the SHA-256 of the
users after the change) on a signed, hash-chained log (``pausegate.records``): the users file's
``users-log.jsonl`` and its head beside it, or the ``users`` log of the API's database.

The digest on each line is what makes a change made outside the API visible: whenever the users are
read again, their digest is compared with the newest line's, and a difference is itself appended
(``users_file.changed_outside_api``, with what differs from the users the log describes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from pausegate.canonical import sha256_hex
from pausegate.models.base import Model
from pausegate.records.anchors import LogAnchor
from pausegate.records.log import ChainLog, ChainMedium

LOG_NAME = "users"
"""The users' change log's name in the API's database."""

ABSENT = "0" * 64
"""The ``users_sha256`` of no users at all (no users file)."""

Action = Literal[
    "user.added",
    "user.replaced",
    "user.roles_changed",
    "user.removed",
    "users_file.changed_outside_api",
]
OUTSIDE = "users_file.changed_outside_api"


class UserDelta(Model):
    """One user as a change left them: their roles (None: removed) and a fingerprint of their token."""

    name: str
    roles: list[str] | None
    credential: str | None = None


class UserChange(Model):
    """One change to the local users, as the API made it (or found it made outside the API)."""

    at: datetime
    by: str = Field(description="The actor id of the admin who made the change; 'pausegate' for the stack itself.")
    by_roles: list[str] = Field(default_factory=list, description="The admin's roles (at most 50).")
    action: Action
    changes: list[UserDelta] = Field(
        default_factory=list, description="Each user the change touched, as it left them."
    )
    truncated: bool = Field(default=False, description="More users changed than the line lists.")
    detail: str = Field(default="", max_length=2000)
    users_sha256: str = Field(description="SHA-256 of the users file after the change; all zeros: no file.")
    prev: str = Field(description="SHA-256 of the previous line (GENESIS for the first).")


def file_digest(content: bytes | None) -> str:
    return ABSENT if content is None else sha256_hex(content)


def user_log(medium: ChainMedium, key: Ed25519PrivateKey, *, anchor: LogAnchor | None = None) -> ChainLog[UserChange]:
    """The users' change log in ``medium``, its head signed with ``key`` (and anchored with ``anchor``)."""
    return ChainLog(medium, key, UserChange.model_validate, "a user change", anchor=anchor)
