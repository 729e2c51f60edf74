"""The API's own record of refusals that no pause can hold.

A refusal on an open pause goes into that pause's timeline. Some refusals have no timeline to
go to: someone without a commander role tries to pull the switch on a program with no open
pause, acts on a pause that has already ended, or asks for this very log without the admin
role. Those are appended here, one canonical JSON line each, every line carrying the SHA-256
of the line before it, so removing, editing or reordering any line but the newest breaks the
chain at the line after it. The file is owner-only and fsynced per line; appends from several API
processes are serialised by an exclusive lock on the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError

from pausegate.evidence._files import FILE_MODE, canonical_json, ensure_dir
from pausegate.models.base import Model

GENESIS = "0" * 64
_TAIL_BYTES = 64 * 1024  # a line is bounded well below this (reason <= 2000 characters)


class RefusalEntry(Model):
    """One refused action, as the API decided it."""

    at: datetime
    actor: str
    roles: list[str]
    program: str | None = Field(description="The program acted on; None for API-wide actions.")
    action: str
    reason: str = Field(max_length=2000)
    prev: str = Field(description="SHA-256 of the previous line (GENESIS for the first).")


def _digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class RefusalLog:
    """Append-only, hash-chained JSON lines at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()

    @contextmanager
    def _locked(self) -> Iterator[int]:
        ensure_dir(self.path.parent, self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _last_digest(fd: int) -> str:
        size = os.fstat(fd).st_size
        if size == 0:
            return GENESIS
        start = max(0, size - _TAIL_BYTES)
        tail = os.pread(fd, size - start, start)
        lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
        return _digest(lines[-1])

    def append(
        self, *, actor: str, roles: list[str], program: str | None, action: str, reason: str
    ) -> RefusalEntry:
        with self._locked() as fd:
            entry = RefusalEntry(
                at=datetime.now(UTC),
                actor=actor,
                roles=sorted(roles),
                program=program,
                action=action,
                reason=reason[:2000],
                prev=self._last_digest(fd),
            )
            line = canonical_json(entry.model_dump(mode="json")) + b"\n"
            os.write(fd, line)
            os.fsync(fd)
        return entry

    def entries(self) -> Iterator[RefusalEntry]:
        """Every entry, oldest first (no chain check: see ``problems``)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for line in f:
                yield RefusalEntry.model_validate(json.loads(line))

    def problems(self) -> list[str]:
        """What is wrong with the chain, by line number; empty if every line links to the one before."""
        found: list[str] = []
        if not self.path.exists():
            return found
        prev = GENESIS
        with self.path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    entry = RefusalEntry.model_validate(json.loads(line))
                except (ValueError, ValidationError) as exc:
                    found.append(f"{self.path}:{number}: not a refusal entry: {str(exc)[:200]}")
                    prev = _digest(line)
                    continue
                if entry.prev != prev:
                    found.append(
                        f"{self.path}:{number}: does not follow line {number - 1} (removed, edited or reordered)"
                    )
                prev = _digest(line)
        return found
