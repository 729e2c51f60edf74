"""The chained-log rule, pure: no file, no database, no clock.

A log is a sequence of lines, each the canonical JSON of an entry that names the SHA-256 of the line
before it (``GENESIS`` for the first), so removing, editing or reordering a line breaks the chain at
the line after it. The newest line has no line after it to vouch for it: the head, signed with the
deployment's evidence key, holds the number of lines and the digest of the last, so cutting or
editing the end is found too. An append that finds the head not describing the log's end (a change
made outside the API) goes on, but records the line count as a *break* in the signed head, so that
re-signing the head never hides the change.

The media (``pausegate.records.files``, ``pausegate.records.postgres``) store the same bytes: a log
exported from the database verifies as a file, line for line the same check.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field, ValidationError

from pausegate.canonical import canonical_json
from pausegate.evidence import signing_keys as keymod
from pausegate.models.base import Model

GENESIS = "0" * 64
"""The ``prev`` of a log's first line."""

MAX_LINE_BYTES = 48 * 1024
"""Lines stay below this: the file medium reads the newest line from the last 64 KiB of the log."""

MAX_BREAKS = 100
"""The signed head keeps the newest this many breaks."""

HEAD_DOMAIN = b"pausegate/log-head\0"
"""What a head's signed message starts with, so that no other message the deployment's key signs can be
taken for a head, nor a head for anything else. Heads written before it carry a signature of the bare
message: only those verify without it (``head_signed``)."""


class ChainedLine(Protocol):
    """A line of a hash-chained log: it names the digest of the line before it."""

    @property
    def prev(self) -> str: ...


class ChainHead(Model):
    """The log's end, signed: how many lines it has and the digest of the last."""

    lines: int = Field(ge=0)
    last: str
    breaks: list[int] = Field(
        default_factory=list,
        description="Line counts at which an append found the log not ending where the head said.",
    )
    key_sha256: str
    signature: str = Field(
        description="Ed25519 over HEAD_DOMAIN and the canonical JSON of {lines, last, breaks} (before the "
        "domain, over the JSON alone), base64."
    )

    @staticmethod
    def signed_part(lines: int, last: str, breaks: list[int]) -> bytes:
        return canonical_json({"lines": lines, "last": last, "breaks": breaks})

    @staticmethod
    def message(lines: int, last: str, breaks: list[int]) -> bytes:
        """What a head written now signs."""
        return HEAD_DOMAIN + ChainHead.signed_part(lines, last, breaks)


def line_digest(line: bytes) -> str:
    """The digest the next line names (and the head): SHA-256 of the line without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def encode(entry: BaseModel, what: str) -> bytes:
    """The line of ``entry`` (canonical JSON, no newline); ``ValueError`` past ``MAX_LINE_BYTES``."""
    line = canonical_json(entry.model_dump(mode="json"))
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"a line of {what} of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    return line


def sign_head(key: Ed25519PrivateKey, lines: int, last: str, breaks: list[int]) -> ChainHead:
    signature = key.sign(ChainHead.message(lines, last, breaks))
    return ChainHead(lines=lines, last=last, breaks=breaks, key_sha256=keymod.fingerprint(key.public_key()),
                     signature=base64.b64encode(signature).decode())


def head_signed(head: ChainHead, key: Ed25519PublicKey) -> bool:
    """Whether ``key`` signed ``head`` as it reads: under ``HEAD_DOMAIN``, or as a head written before
    heads carried it. The bare form is one no code signs any more, so a head in it was written before
    the change; a saved old head put back is a log cut back, which the head anchored outside the
    medium finds (``anchor_problems``)."""
    try:
        signature = base64.b64decode(head.signature, validate=True)
    except ValueError:
        return False
    part = ChainHead.signed_part(head.lines, head.last, head.breaks)
    return keymod.verify_signature(key, signature, HEAD_DOMAIN + part) or keymod.verify_signature(
        key, signature, part)


# ---------------------------------------------------------------- appending


@dataclass(frozen=True)
class Resume:
    """Where the next line goes: after ``lines`` lines, the new head carrying ``breaks``."""

    lines: int
    breaks: list[int]
    changed_outside: bool = False
    """The head did not describe the log's end: a break was recorded (callers log it loudly)."""


def resume_from_head(head: ChainHead | None, key: Ed25519PublicKey, last: str, number: int | None) -> Resume | None:
    """Where the log resumes when its signed head still describes its end (names ``last``, the digest of
    the newest line, and ``number``, that line's number, when the medium knows it without counting);
    None when it does not, and the lines must be counted (``resume_after_count``)."""
    if head is None or head.last != last or (number is not None and head.lines != number):
        return None
    if not head_signed(head, key):
        return None
    return Resume(head.lines, list(head.breaks))


def resume_after_count(head: ChainHead | None, key: Ed25519PublicKey, count: int) -> Resume:
    """Where the log resumes when its head does not describe it (``resume_from_head`` said None): after
    the ``count`` lines there are, the mismatch kept as a break (unless this is the log's first line), on
    top of the breaks a validly signed head already held."""
    signed = head is not None and head_signed(head, key)
    breaks = list(head.breaks) if head is not None and signed else []
    if count or head is not None:
        return Resume(count, [*breaks, count][-MAX_BREAKS:], changed_outside=True)
    return Resume(count, breaks)


# ---------------------------------------------------------------- checking


@dataclass
class Walk:
    """The lines as read: what is wrong with them, how many there are and the digest of the last."""

    problems: list[str] = field(default_factory=list)
    lines: int = 0
    last: str = GENESIS
    marked: str | None = None
    """The digest of the line ``walk`` was asked to mark (None: not reached)."""


def walk(
    lines: Iterable[tuple[int, bytes]], parse: Callable[[Any], ChainedLine], what: str, where: str, *, mark: int = 0
) -> Walk:
    """Follow the chain through ``lines`` ((number as stored, line), oldest first): a line numbered
    out of turn, a line that is not ``what`` (``parse`` refuses it), a line that does not name the one
    before it. The digest of line ``mark`` is kept (``Walk.marked``)."""
    found = Walk()
    for seq, line in lines:
        found.lines += 1
        number = found.lines
        if seq != number:
            found.problems.append(f"{where}:{number}: numbered {seq} (lines before it removed)")
        try:
            entry = parse(json.loads(line))
        except (ValueError, ValidationError) as exc:
            found.problems.append(f"{where}:{number}: not {what}: {str(exc)[:200]}")
        else:
            if entry.prev != found.last:
                found.problems.append(
                    f"{where}:{number}: does not follow line {number - 1} (removed, edited or reordered)")
        found.last = line_digest(line)
        if number == mark:
            found.marked = found.last
    return found


def head_problems(
    walked: Walk, head: ChainHead | None, key: Ed25519PublicKey, where: str, head_where: str
) -> list[str]:
    """What the head says about the lines walked: an end it does not vouch for, a missing or forged head,
    the breaks appends recorded."""
    if head is None:
        return [f"{head_where}: missing or unreadable; the log's end is not vouched for"] if walked.lines else []
    if not head_signed(head, key):
        return [f"{head_where}: signature does not verify with the deployment's key"]
    found: list[str] = []
    if (head.lines, head.last) != (walked.lines, walked.last):
        found.append(f"{where}: ends at line {walked.lines}, the signed head says line {head.lines} "
                     "(lines cut or appended outside the API, or the last line edited)")
    found += [
        f"{where}: when line {n + 1} was appended, the log did not end where its signed head said "
        "(changed outside the API)"
        for n in head.breaks
    ]
    return found


def missing_problems(head_stored: bool, where: str) -> list[str]:
    """What is wrong with a log that is not there at all: nothing, unless a head says it had lines."""
    return [f"{where}: missing, but its signed head says it had lines"] if head_stored else []


# ---------------------------------------------------------------- anchored outside the medium


def anchor_problems(walked: Walk, anchored: ChainHead | None, key: Ed25519PublicKey, where: str,
                    anchor_where: str) -> list[str]:
    """What a head anchored outside the log's medium says about the lines walked (``walk`` marking line
    ``anchored.lines``): the log must still hold that line, unchanged. Someone who owns the medium can
    cut the log back and put a saved head back; they cannot take back the anchor."""
    if anchored is None:
        return []
    if not head_signed(anchored, key):
        return [f"{anchor_where}: signature does not verify with the deployment's key"]
    if walked.lines < anchored.lines:
        return [f"{where}: ends at line {walked.lines}, but its head anchored outside it says line {anchored.lines} "
                "(lines cut, the head put back)"]
    if anchored.lines and walked.marked != anchored.last:
        return [f"{where}:{anchored.lines}: not the line its head anchored outside it names (rewritten)"]
    return []
