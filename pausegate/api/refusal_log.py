"""The API's own record of refusals that no pause can hold.

A refusal on an open pause goes into that pause's timeline. Some refusals have no timeline to
go to: someone without a commander role tries to pull the switch on a program with no open
pause, acts on a pause that has already ended, or asks for this very log without the admin
role. Those are appended here, one canonical JSON line each (refusals of one actor, program and
action within a minute share a line with a count; see ``pausegate.api.refusals``), every line carrying the SHA-256
of the line before it, so removing, editing or reordering a line breaks the chain at the line
after it. The newest line has no line after it to vouch for it: a head file beside the log,
rewritten with each append and signed with the deployment's evidence key, holds the number of
lines and the digest of the last, so cutting or editing the end is found too. The files are
owner-only and fsynced per append; appends from several API processes are serialised by an
exclusive lock on the log.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError

from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import FILE_MODE, canonical_json, ensure_dir, replace_file
from pausegate.models.base import Model

log = structlog.get_logger(__name__)

GENESIS = "0" * 64
_TAIL_BYTES = 64 * 1024  # a line is bounded well below this (reason <= 2000 characters)


class ChainedLine(Protocol):
    """A line of a hash-chained log: it names the digest of the line before it."""

    @property
    def prev(self) -> str: ...


class RefusalStore(Protocol):
    """Where refusals are appended and read: this file log, or the shared database's
    (``pausegate.state.refusals``), with the same entries and the same chain check."""

    def append(
        self, *, actor: str, roles: list[str], program: str | None, action: str, reason: str, count: int = 1
    ) -> RefusalEntry: ...

    def entries(self) -> Iterator[RefusalEntry]: ...

    def problems(self) -> list[str]: ...


class RefusalEntry(Model):
    """One refused action, as the API decided it."""

    at: datetime
    actor: str
    roles: list[str]
    program: str | None = Field(description="The program acted on; None for API-wide actions.")
    action: str
    reason: str = Field(max_length=2000, description="The newest refusal's reason when several share the line.")
    count: int = Field(
        default=1,
        ge=1,
        description="Refusals of this actor, program and action this line stands for: the API coalesces "
        "them per minute, so a flood adds one line a minute, not one per request.",
    )
    prev: str = Field(description="SHA-256 of the previous line (GENESIS for the first).")


class RefusalHead(Model):
    """The log's end, signed: how many lines it has and the digest of the last."""

    lines: int = Field(ge=0)
    last: str
    breaks: list[int] = Field(
        default_factory=list,
        description="Line counts at which an append found the log not ending where the head said.",
    )
    key_sha256: str
    signature: str = Field(description="Ed25519 over the canonical JSON of {lines, last, breaks}, base64.")

    @staticmethod
    def signed_part(lines: int, last: str, breaks: list[int]) -> bytes:
        return canonical_json({"lines": lines, "last": last, "breaks": breaks})


def _digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class RefusalLog:
    """Append-only, hash-chained JSON lines at ``path``, their end signed with ``key``."""

    def __init__(self, path: Path, key: Ed25519PrivateKey) -> None:
        self.path = Path(path).absolute()
        self.head_path = self.path.with_name(self.path.name.removesuffix(".jsonl") + ".head.json")
        self._key = key

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

    def _line_count(self, fd: int, last: str) -> tuple[int, list[int]]:
        """Lines in the log and the signed breaks: from the head when it still describes the
        file's end. Otherwise the lines are counted, and unless this is the log's first line the
        mismatch is kept as a break, so that re-signing the head never hides a change made
        outside the API."""
        head = self._head()
        signed = head is not None and self._head_signed(head)
        if head is not None and signed and head.last == last:
            return head.lines, head.breaks
        size = os.fstat(fd).st_size
        count = os.pread(fd, size, 0).count(b"\n") if size else 0
        breaks = list(head.breaks) if head is not None and signed else []
        if count or head is not None:
            breaks = [*breaks, count][-100:]
            log.error("refusal_log_changed_outside_the_api", path=str(self.path), lines=count)
        return count, breaks

    def _head(self) -> RefusalHead | None:
        try:
            return RefusalHead.model_validate(json.loads(self.head_path.read_bytes()))
        except (OSError, ValueError, ValidationError):
            return None

    def _head_signed(self, head: RefusalHead, public_key: Ed25519PublicKey | None = None) -> bool:
        key = public_key or self._key.public_key()
        try:
            signature = base64.b64decode(head.signature, validate=True)
        except ValueError:
            return False
        return keymod.verify_signature(key, signature, RefusalHead.signed_part(head.lines, head.last, head.breaks))

    def _write_head(self, lines: int, last: str, breaks: list[int]) -> None:
        signature = self._key.sign(RefusalHead.signed_part(lines, last, breaks))
        head = RefusalHead(
            lines=lines,
            last=last,
            breaks=breaks,
            key_sha256=keymod.fingerprint(self._key.public_key()),
            signature=base64.b64encode(signature).decode(),
        )
        replace_file(self.head_path, canonical_json(head.model_dump(mode="json")))

    def append(
        self, *, actor: str, roles: list[str], program: str | None, action: str, reason: str, count: int = 1
    ) -> RefusalEntry:
        """Append one line standing for ``count`` refusals (coalesced by the caller), chained and signed."""
        with self._locked() as fd:
            prev = self._last_digest(fd)
            lines, breaks = self._line_count(fd, prev)
            entry = RefusalEntry(
                at=datetime.now(UTC),
                actor=actor,
                roles=sorted(roles),
                program=program,
                action=action,
                reason=reason[:2000],
                count=count,
                prev=prev,
            )
            line = canonical_json(entry.model_dump(mode="json")) + b"\n"
            os.write(fd, line)
            os.fsync(fd)
            self._write_head(lines + 1, _digest(line), breaks)
        return entry

    def entries(self) -> Iterator[RefusalEntry]:
        """Every entry, oldest first (no chain check: see ``problems``)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for line in f:
                yield RefusalEntry.model_validate(json.loads(line))

    def problems(self) -> list[str]:
        """What is wrong with the log, by line number; empty if every line links to the one before
        and the signed head vouches for the last."""
        return self.chain_problems(RefusalEntry.model_validate, "a refusal entry")

    def chain_problems(self, parse: Callable[[Any], ChainedLine], what: str) -> list[str]:
        """``problems`` for a log whose lines ``parse`` reads (every chained log of the API shares this check)."""
        found: list[str] = []
        if not self.path.exists():
            if self.head_path.exists():
                found.append(f"{self.path}: missing, but its signed head says it had lines")
            return found
        prev = GENESIS
        number = 0
        with self.path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    entry = parse(json.loads(line))
                except (ValueError, ValidationError) as exc:
                    found.append(f"{self.path}:{number}: not {what}: {str(exc)[:200]}")
                    prev = _digest(line)
                    continue
                if entry.prev != prev:
                    found.append(
                        f"{self.path}:{number}: does not follow line {number - 1} (removed, edited or reordered)"
                    )
                prev = _digest(line)
        head = self._head()
        if head is None:
            if number:
                found.append(f"{self.head_path}: missing or unreadable; the log's end is not vouched for")
        elif not self._head_signed(head):
            found.append(f"{self.head_path}: signature does not verify with the deployment's key")
        else:
            if (head.lines, head.last) != (number, prev):
                found.append(
                    f"{self.path}: ends at line {number}, the signed head says line {head.lines} "
                    "(lines cut or appended outside the API, or the last line edited)"
                )
            found += [
                f"{self.path}: when line {n + 1} was appended, the log did not end where its signed head said "
                "(changed outside the API)"
                for n in head.breaks
            ]
        return found
