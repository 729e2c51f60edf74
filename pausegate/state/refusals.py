"""The API's refusal log in the shared state database: the file log's entries and guarantees
(``pausegate.api.refusal_log``), one chain for every replica (``pausegate.state.chain``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.refusal_log import RefusalEntry
from pausegate.state.chain import PgChain
from pausegate.state.database import StateDatabase

LOG_NAME = "refusals"


class PgRefusalLog:
    """``RefusalLog``'s interface (append, entries, problems) over the shared database."""

    def __init__(self, db: StateDatabase, key: Ed25519PrivateKey) -> None:
        self.db = db
        self.chain = PgChain(LOG_NAME, key)

    def append(
        self, *, actor: str, roles: list[str], program: str | None, action: str, reason: str, count: int = 1
    ) -> RefusalEntry:
        """Append one line standing for ``count`` refusals (coalesced by the caller), chained and signed."""
        with self.db.sync_pool.connection() as conn, conn.transaction():
            head = self.chain.lock(conn)
            return self.chain.append(conn, head, lambda prev: RefusalEntry(
                at=datetime.now(UTC), actor=actor, roles=sorted(roles), program=program, action=action,
                reason=reason[:2000], count=count, prev=prev,
            ))

    def entries(self) -> Iterator[RefusalEntry]:
        """Every entry, oldest first (no chain check: see ``problems``)."""
        with self.db.sync_pool.connection() as conn:
            yield from self.chain.entries(conn, RefusalEntry.model_validate)

    def problems(self) -> list[str]:
        """What is wrong with the log; empty if every line links to the one before and the signed head
        vouches for the last."""
        with self.db.sync_pool.connection() as conn:
            return self.chain.problems(conn, RefusalEntry.model_validate, "a refusal entry")

    def export(self, path: Path) -> Path:
        """The log as a file log at ``path`` (and its head, whose path is returned), for offline checks."""
        with self.db.sync_pool.connection() as conn:
            return self.chain.export(conn, path)
