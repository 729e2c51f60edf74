"""The signed, append-only record of every change to local users and their roles.

One canonical JSON line per change (who changed which user, to which roles, and the SHA-256 of the
users file after the change), each line carrying the SHA-256 of the line before it, the log's end
vouched for by a head file signed with the deployment's evidence key. The chain, the signed head,
the lock that serialises appends across API processes and the record of breaks found at append
time are the refusal log's (``pausegate.api.refusal_log``), reused here; only the lines differ.

The users file digest on each line is what makes a change made outside the API visible: whenever
the file is read again, its digest is compared with the newest line's, and a difference is itself
appended (``users_file.changed_outside_api``, with what differs from the state the log describes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, ValidationError

from pausegate.api.refusal_log import RefusalLog
from pausegate.evidence.files import canonical_json, sha256_hex
from pausegate.models.base import Model

ABSENT = "0" * 64
"""The ``users_sha256`` of a users file that does not exist."""

MAX_LINE_BYTES = 48 * 1024
"""Lines stay below this: the chain reads the newest line from the last 64 KiB of the log."""

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


class UserLog:
    """The change log at ``path`` (JSON lines), its head beside it, signed with ``key``."""

    def __init__(self, path: Path, key: Ed25519PrivateKey) -> None:
        self._chain = RefusalLog(path, key)
        self.path = self._chain.path
        self.head_path = self._chain.head_path

    @contextmanager
    def locked(self) -> Iterator[int]:
        """The log, exclusively: hold it across a change to the users file and its line, so no reader
        ever compares the file with a log that does not describe it yet."""
        with self._chain._locked() as fd:
            yield fd

    @staticmethod
    def last(fd: int) -> UserChange | None:
        """The newest line (None when the log is empty or its last line is not a change)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        start = max(0, size - 64 * 1024)
        line = os.pread(fd, size - start, start).rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            return UserChange.model_validate(json.loads(line))
        except (ValueError, ValidationError):
            return None

    def append(self, fd: int, change: dict[str, object]) -> UserChange:
        """Append ``change`` (a ``UserChange`` without ``prev``) under the lock ``locked`` gave."""
        prev = self._chain._last_digest(fd)
        lines, breaks = self._chain._line_count(fd, prev)
        entry = UserChange.model_validate({**change, "prev": prev})
        line = canonical_json(entry.model_dump(mode="json")) + b"\n"
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"a user-log line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
        os.write(fd, line)
        os.fsync(fd)
        self._chain._write_head(lines + 1, sha256_hex(line.rstrip(b"\n")), breaks)
        return entry

    def entries(self) -> Iterator[UserChange]:
        """Every line that is a change, oldest first (no chain check: see ``problems``)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for line in f:
                try:
                    yield UserChange.model_validate(json.loads(line))
                except (ValueError, ValidationError):
                    continue  # reported by problems()

    def problems(self) -> list[str]:
        """What is wrong with the log: a line that does not follow the one before (removed, edited,
        reordered), an end the signed head does not vouch for, a missing or forged head, breaks
        found when appending."""
        return self._chain.chain_problems(UserChange.model_validate, "a user change")
