"""A log of entries over any medium that keeps the chain rule (``pausegate.records.chain``).

A medium (``ChainMedium``) only stores: it hands out its lines and its head as one consistent view
(``read``), and, held exclusively (``hold``: a file lock, a row lock), its newest line, its line count,
its head, and the append of a line with the head that vouches for it. Everything else, what the next
line names, when a break is recorded, what a check finds, is the rule's, here the same for every medium.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from pausegate.records import chain
from pausegate.records.anchors import LogAnchor
from pausegate.records.chain import GENESIS, ChainedLine, ChainHead

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=BaseModel)


@dataclass
class Stored:
    """One consistent view of a log as stored."""

    lines: Iterable[tuple[int, bytes]] | None
    """(number as stored, line), oldest first; None when the log is not there at all."""
    head: Callable[[], ChainHead | None]
    """Its head (None: none, or unreadable), read after the lines."""
    head_stored: bool = False
    """Whether anything is stored as its head (readable or not)."""


class HeldChain(Protocol):
    """A log's storage held exclusively: appends from every other process wait until it is let go."""

    def tail(self) -> tuple[int | None, bytes | None]:
        """The newest line and its number (None: the medium would have to count; line None: no line)."""
        ...

    def count(self) -> int:
        """How many lines there are (the number of the newest, for a medium that numbers them)."""
        ...

    def head(self) -> ChainHead | None:
        """The head as stored (None: none yet, or unreadable)."""
        ...

    def write(self, number: int, line: bytes, head: ChainHead) -> None:
        """Append ``line`` (no newline) as line ``number`` and store ``head``, durably."""
        ...


class ChainMedium(Protocol):
    """Where a chained log's bytes live: a file and its head file, or rows of the API's database."""

    @property
    def where(self) -> str:
        """How a problem names the lines (a path, a log's name)."""
        ...

    @property
    def head_where(self) -> str:
        """How a problem names the head."""
        ...

    def hold(self) -> AbstractContextManager[HeldChain]: ...

    def read(self) -> AbstractContextManager[Stored]: ...


class ChainLog(Generic[E]):
    """Entries of one kind (``parse`` reads them; ``what`` names them in problems) on ``medium``, the
    head signed with ``key``; with ``anchor``, each new head is also anchored outside the medium
    (``pausegate.records.anchors``) and the log is held to the newest anchored one."""

    def __init__(
        self, medium: ChainMedium, key: Ed25519PrivateKey, parse: Callable[[Any], E], what: str,
        *, anchor: LogAnchor | None = None,
    ) -> None:
        self.medium = medium
        self.key = key
        self.parse = parse
        self.what = what
        self.anchor = anchor

    @contextmanager
    def held(self) -> Iterator[Appending[E]]:
        """The log, exclusively: hold it across a change and its line(s), so that no reader ever compares
        a store with a log that does not describe it yet."""
        with self.medium.hold() as held:
            yield Appending(self, held)

    def append(self, build: Callable[[str], E]) -> E:
        """Append the entry ``build(prev)`` makes; the head is re-signed (and anchored, once stored)."""
        with self.held() as appending:
            entry = appending.append(build)
        self.anchor_signed(appending.signed)
        return entry

    def anchor_signed(self, head: ChainHead | None) -> None:
        """Anchor ``head``, which this log signed, outside the medium (after the medium stored it: an
        anchor of a head that was rolled back would say lines were cut)."""
        if self.anchor is not None and head is not None:
            self.anchor.anchor(head)

    def anchor_now(self) -> None:
        """Anchor the head the medium holds now, if the deployment's key signed it: the periodic anchor,
        for appends whose own anchor failed. An older head put back is no longer than the newest anchored
        one, and is skipped."""
        if self.anchor is None:
            return
        with self.medium.read() as stored:
            head = stored.head()
        if head is not None and chain.head_signed(head, self.key.public_key()):
            self.anchor.anchor(head)

    def entries(self) -> Iterator[E]:
        """Every line that is an entry, oldest first (no chain check: see ``problems``)."""
        with self.medium.read() as stored:
            for _, line in stored.lines or ():
                try:
                    yield self.parse(json.loads(line))
                except (ValueError, ValidationError):
                    continue  # reported by problems()

    def problems(self) -> list[str]:
        """What is wrong with the log; empty if every line links to the one before and the signed head
        vouches for the last."""
        public = self.key.public_key()
        medium = self.medium
        # The anchor before the lines: one anchored after them would be newer than the lines read.
        found: list[str] = []
        anchored: ChainHead | None = None
        if self.anchor is not None:
            try:
                number, anchored = self.anchor.newest()
            except Exception as exc:  # a check that cannot run is a failure, never a pass
                number, anchored = 0, None
                found.append(f"{self.anchor.where}: unreadable, the log is not held to them: {str(exc)[:200]}")
            if number and anchored is None:
                found.append(f"{self.anchor.where}: number {number} is not a head the deployment anchored")
        with medium.read() as stored:
            if stored.lines is None:
                stored.lines = ()
                if anchored is None or not anchored.lines:
                    return found + chain.missing_problems(stored.head_stored, medium.where)
            # Every entry names the line before it (``prev``): what the chain follows.
            walked = chain.walk(stored.lines, cast(Callable[[Any], ChainedLine], self.parse), self.what, medium.where,
                                mark=anchored.lines if anchored is not None else 0)
            head = stored.head()
        found += walked.problems + chain.head_problems(walked, head, public, medium.where, medium.head_where)
        if self.anchor is not None:
            found += chain.anchor_problems(walked, anchored, public, medium.where, self.anchor.where)
        return found


class Appending(Generic[E]):
    """A held log: its newest entry, and appends that keep the chain and re-sign the head."""

    def __init__(self, owner: ChainLog[E], held: HeldChain) -> None:
        self._log = owner
        self._held = held
        self.signed: ChainHead | None = None
        """The head the newest append signed (None: nothing appended)."""

    def last(self) -> E | None:
        """The newest line's entry (None when the log is empty or its newest line is not an entry)."""
        _, line = self._held.tail()
        if line is None:
            return None
        try:
            return self._log.parse(json.loads(line))
        except (ValueError, ValidationError):
            return None

    def append(self, build: Callable[[str], E]) -> E:
        held, key = self._held, self._log.key
        number, tail = held.tail()
        prev = chain.line_digest(tail) if tail is not None else GENESIS
        head = held.head()
        resume = chain.resume_from_head(head, key.public_key(), prev, number)
        if resume is None:
            resume = chain.resume_after_count(head, key.public_key(), number if number is not None else held.count())
            if resume.changed_outside:
                log.error("chained_log_changed_outside_the_api", log=self._log.medium.where, lines=resume.lines)
        entry = build(prev)
        line = chain.encode(entry, self._log.what)
        lines = resume.lines + 1
        self.signed = chain.sign_head(key, lines, chain.line_digest(line), resume.breaks)
        held.write(lines, line, self.signed)
        return entry
