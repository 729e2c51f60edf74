"""The PostgreSQL medium of a chained log: rows of ``api_log_lines`` (numbered ``seq``) and one row of
``api_log_heads``, shared by every API replica (the tables: ``pausegate.apidb.schema``).

Holding the log locks its head row (``SELECT … FOR UPDATE``) for the rest of the transaction, so appends
from any number of replicas form one chain and never fork it; a change to other rows in the same
transaction (a user and the line recording it) commits with its line or not at all. A check reads the
lines and the head in one snapshot (``REPEATABLE READ``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import pq

from pausegate.records.chain import GENESIS, ChainHead
from pausegate.records.files import FileMedium
from pausegate.records.log import Stored

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
"""A connection to use: a pool's ``connection``, or the caller's own one (its transaction)."""

_BATCH = 1000


class PgMedium:
    """The log named ``name`` in the API's database, reached through ``connect``."""

    def __init__(self, connect: Connect, name: str) -> None:
        self._connect = connect
        self.name = name

    @classmethod
    def on(cls, conn: psycopg.Connection[Any], name: str) -> PgMedium:
        """The log, inside ``conn``'s transaction (held until it ends)."""

        @contextmanager
        def same() -> Iterator[psycopg.Connection[Any]]:
            yield conn

        return cls(same, name)

    @property
    def where(self) -> str:
        return f"state database log {self.name!r}"

    @property
    def head_where(self) -> str:
        return f"state database log {self.name!r}, its signed head"

    @contextmanager
    def hold(self) -> Iterator[HeldRows]:
        with self._connect() as conn, conn.transaction():
            conn.execute("INSERT INTO api_log_heads (log) VALUES (%s) ON CONFLICT DO NOTHING", (self.name,))
            conn.execute("SELECT 1 FROM api_log_heads WHERE log = %s FOR UPDATE", (self.name,))
            yield HeldRows(conn, self.name)

    @contextmanager
    def read(self) -> Iterator[Stored]:
        with self._connect() as conn:
            top = conn.info.transaction_status == pq.TransactionStatus.IDLE
            with conn.transaction():  # one snapshot of lines and head
                if top:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                rows = HeldRows(conn, self.name)
                yield Stored(lines=rows.lines(), head=rows.head, head_stored=True)

    def export(self, target: FileMedium) -> None:
        """Write this log as a file log (lines and head), which the same check verifies offline."""
        with self.read() as stored:
            target.replace((line for _, line in stored.lines or ()), stored.head())


class HeldRows:
    """The log's rows, on one connection."""

    def __init__(self, conn: psycopg.Connection[Any], name: str) -> None:
        self._conn = conn
        self._name = name

    def tail(self) -> tuple[int | None, bytes | None]:
        row = self._conn.execute(
            "SELECT seq, line FROM api_log_lines WHERE log = %s ORDER BY seq DESC LIMIT 1", (self._name,)
        ).fetchone()
        return (int(row[0]), str(row[1]).encode()) if row else (0, None)

    def count(self) -> int:
        number, _ = self.tail()
        return number or 0

    def head(self) -> ChainHead | None:
        row = self._conn.execute(
            "SELECT lines, last, breaks, key_sha256, signature FROM api_log_heads WHERE log = %s", (self._name,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return ChainHead.model_construct(lines=int(row[0]), last=row[1] or GENESIS, breaks=list(row[2] or []),
                                         key_sha256=row[3] or "", signature=row[4] or "")

    def write(self, number: int, line: bytes, head: ChainHead) -> None:
        self._conn.execute("INSERT INTO api_log_lines (log, seq, line) VALUES (%s, %s, %s)",
                           (self._name, number, line.decode()))
        self._conn.execute(
            "UPDATE api_log_heads SET lines = %s, last = %s, breaks = %s, key_sha256 = %s, signature = %s "
            "WHERE log = %s",
            (head.lines, head.last, json.dumps(head.breaks), head.key_sha256, head.signature, self._name),
        )

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Every (seq, line), oldest first, read in batches (a log may be long)."""
        after = 0
        while True:
            rows = self._conn.execute(
                "SELECT seq, line FROM api_log_lines WHERE log = %s AND seq > %s ORDER BY seq LIMIT %s",
                (self._name, after, _BATCH),
            ).fetchall()
            for seq, line in rows:
                yield int(seq), str(line).encode()
            if len(rows) < _BATCH:
                return
            after = int(rows[-1][0])
