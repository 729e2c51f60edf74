"""A hash-chained, signed, append-only log in the shared state database, shared by every replica.

The same guarantees as the file logs (``pausegate.api.refusal_log``), with the same bytes: each line is
the canonical JSON of an entry naming the SHA-256 of the line before it, and a head row holds the
number of lines and the digest of the last, signed with the deployment's evidence key. What the
database adds is the serialisation: an append locks its log's head row (``SELECT … FOR UPDATE``), reads
the last line, inserts the next and re-signs the head in one transaction, so appends from any number
of replicas form one chain and never fork it. An append that finds the head not describing the lines
(a line removed, edited or added outside the API) keeps going but records the line count as a break
in the signed head, so re-signing never hides the change.

``export`` writes a log as the file format (lines + head), which ``RefusalLog.problems`` verifies
offline, line for line the same check.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from pausegate.api.refusal_log import GENESIS, ChainedLine, RefusalHead
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.files import FILE_MODE, canonical_json, ensure_dir, replace_file

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=BaseModel)

MAX_LINE_BYTES = 48 * 1024
_BATCH = 1000


def line_digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


@dataclass
class Head:
    """The head row as read under its lock (``lines`` None: no signed head yet)."""

    lines: int | None
    last: str | None
    breaks: list[int] = field(default_factory=list)
    key_sha256: str | None = None
    signature: str | None = None


class PgChain:
    """The log named ``name`` in ``api_log_lines``/``api_log_heads``, its head signed with ``key``."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        self.name = name
        self._key = key

    @property
    def where(self) -> str:
        return f"state database log {self.name!r}"

    # ------------------------------------------------------------ appending (inside the caller's transaction)

    def lock(self, conn: psycopg.Connection[Any]) -> Head:
        """Take this log's head row for the rest of the transaction (created on the log's first use)."""
        conn.execute("INSERT INTO api_log_heads (log) VALUES (%s) ON CONFLICT DO NOTHING", (self.name,))
        row = conn.execute(
            "SELECT lines, last, breaks, key_sha256, signature FROM api_log_heads WHERE log = %s FOR UPDATE",
            (self.name,),
        ).fetchone()
        assert row is not None
        return Head(lines=row[0], last=row[1], breaks=list(row[2] or []), key_sha256=row[3], signature=row[4])

    def last_line(self, conn: psycopg.Connection[Any]) -> tuple[int, str | None]:
        row = conn.execute(
            "SELECT seq, line FROM api_log_lines WHERE log = %s ORDER BY seq DESC LIMIT 1", (self.name,)
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, None)

    def append(self, conn: psycopg.Connection[Any], head: Head, build: Callable[[str], E]) -> E:
        """Append the entry ``build(prev)`` makes, under the lock ``lock`` took; the head is re-signed."""
        count, last = self.last_line(conn)
        prev = line_digest(last) if last is not None else GENESIS
        signed = self._signed(head)
        if signed and head.last == prev and head.lines == count:
            breaks = list(head.breaks)
        else:
            breaks = list(head.breaks) if signed else []
            if count or head.lines is not None:
                breaks = [*breaks, count][-100:]
                log.error("state_log_changed_outside_the_api", log=self.name, lines=count)
        entry = build(prev)
        line = canonical_json(entry.model_dump(mode="json")).decode()
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"a {self.name} line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
        conn.execute("INSERT INTO api_log_lines (log, seq, line) VALUES (%s, %s, %s)", (self.name, count + 1, line))
        lines, last_digest = count + 1, line_digest(line)
        signature = self._key.sign(RefusalHead.signed_part(lines, last_digest, breaks))
        fingerprint, encoded = keymod.fingerprint(self._key.public_key()), base64.b64encode(signature).decode()
        conn.execute(
            "UPDATE api_log_heads SET lines = %s, last = %s, breaks = %s, key_sha256 = %s, signature = %s "
            "WHERE log = %s",
            (lines, last_digest, json.dumps(breaks), fingerprint, encoded, self.name),
        )
        # The caller may append again under the same lock (a change after the record of an outside one).
        head.lines, head.last, head.breaks, head.key_sha256, head.signature = (
            lines, last_digest, breaks, fingerprint, encoded)
        return entry

    # ------------------------------------------------------------ reading

    def head(self, conn: psycopg.Connection[Any]) -> Head:
        row = conn.execute(
            "SELECT lines, last, breaks, key_sha256, signature FROM api_log_heads WHERE log = %s", (self.name,)
        ).fetchone()
        if row is None:
            return Head(lines=None, last=None)
        return Head(lines=row[0], last=row[1], breaks=list(row[2] or []), key_sha256=row[3], signature=row[4])

    def lines(self, conn: psycopg.Connection[Any]) -> Iterator[tuple[int, str]]:
        """Every (seq, line), oldest first, read in batches (a log may be long)."""
        after = 0
        while True:
            rows = conn.execute(
                "SELECT seq, line FROM api_log_lines WHERE log = %s AND seq > %s ORDER BY seq LIMIT %s",
                (self.name, after, _BATCH),
            ).fetchall()
            for seq, line in rows:
                yield int(seq), str(line)
            if len(rows) < _BATCH:
                return
            after = int(rows[-1][0])

    def entries(self, conn: psycopg.Connection[Any], parse: Callable[[Any], E]) -> Iterator[E]:
        """Every line ``parse`` reads, oldest first (no chain check: see ``problems``)."""
        for _, line in self.lines(conn):
            try:
                yield parse(json.loads(line))
            except (ValueError, ValidationError):
                continue  # reported by problems()

    def problems(self, conn: psycopg.Connection[Any], parse: Callable[[Any], ChainedLine], what: str) -> list[str]:
        """The file logs' check (``RefusalLog.chain_problems``), on the database's rows."""
        found: list[str] = []
        prev = GENESIS
        number = 0
        with conn.transaction():  # one snapshot of lines and head
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for seq, line in self.lines(conn):
                number += 1
                if seq != number:
                    found.append(f"{self.where}:{number}: numbered {seq} (lines before it removed)")
                try:
                    entry = parse(json.loads(line))
                except (ValueError, ValidationError) as exc:
                    found.append(f"{self.where}:{number}: not {what}: {str(exc)[:200]}")
                    prev = line_digest(line)
                    continue
                if entry.prev != prev:
                    found.append(f"{self.where}:{number}: does not follow line {number - 1} "
                                 "(removed, edited or reordered)")
                prev = line_digest(line)
            head = self.head(conn)
        if head.lines is None:
            if number:
                found.append(f"{self.where}: its signed head is missing; the log's end is not vouched for")
        elif not self._signed(head):
            found.append(f"{self.where}: the head's signature does not verify with the deployment's key")
        else:
            if (head.lines, head.last) != (number, prev):
                found.append(
                    f"{self.where}: ends at line {number}, the signed head says line {head.lines} "
                    "(lines cut or appended outside the API, or the last line edited)"
                )
            found += [
                f"{self.where}: when line {n + 1} was appended, the log did not end where its signed head said "
                "(changed outside the API)"
                for n in head.breaks
            ]
        return found

    def export(self, conn: psycopg.Connection[Any], path: Path) -> Path:
        """Write the log as ``path`` (JSON lines, 0600) and its head beside it, as the file logs are:
        ``RefusalLog(path, key).problems()`` then checks it offline. Returns the head's path."""
        path = Path(path).absolute()
        head_path = path.with_name(path.name.removesuffix(".jsonl") + ".head.json")
        ensure_dir(path.parent, path.parent)
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            data = b"".join(line.encode() + b"\n" for _, line in self.lines(conn))
            head = self.head(conn)
        replace_file(path, data)
        path.chmod(FILE_MODE)
        if head.lines is not None:
            replace_file(head_path, canonical_json(RefusalHead(
                lines=head.lines, last=head.last or GENESIS, breaks=head.breaks, key_sha256=head.key_sha256 or "",
                signature=head.signature or "").model_dump(mode="json")))
        return head_path

    def _signed(self, head: Head) -> bool:
        if head.lines is None or head.last is None or not head.signature:
            return False
        try:
            signature = base64.b64decode(head.signature, validate=True)
        except ValueError:
            return False
        return keymod.verify_signature(
            self._key.public_key(), signature, RefusalHead.signed_part(head.lines, head.last, head.breaks)
        )
