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
    head signed with ``key``."""

    def __init__(self, medium: ChainMedium, key: Ed25519PrivateKey, parse: Callable[[Any], E], what: str) -> None:
        self.medium = medium
        self.key = key
        self.parse = parse
        self.what = what

    @contextmanager
    def held(self) -> Iterator[Appending[E]]:
        """The log, exclusively: hold it across a change and its line(s), so that no reader ever compares
        a store with a log that does not describe it yet."""
        with self.medium.hold() as held:
            yield Appending(self, held)

    def append(self, build: Callable[[str], E]) -> E:
        """Append the entry ``build(prev)`` makes; the head is re-signed."""
        with self.held() as appending:
            return appending.append(build)

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
        with medium.read() as stored:
            if stored.lines is None:
                return chain.missing_problems(stored.head_stored, medium.where)
            # Every entry names the line before it (``prev``): what the chain follows.
            walked = chain.walk(stored.lines, cast(Callable[[Any], ChainedLine], self.parse), self.what, medium.where)
            head = stored.head()
        return walked.problems + chain.head_problems(walked, head, public, medium.where, medium.head_where)


class Appending(Generic[E]):
    """A held log: its newest entry, and appends that keep the chain and re-sign the head."""

    def __init__(self, owner: ChainLog[E], held: HeldChain) -> None:
        self._log = owner
        self._held = held

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
        held.write(lines, line, chain.sign_head(key, lines, chain.line_digest(line), resume.breaks))
        return entry
