"""The API's own record of refusals that no pause can hold.

A refusal on an open pause goes into that pause's timeline. Some refusals have no timeline to
go to: someone without a commander role tries to pull the switch on a program with no open
pause, acts on a pause that has already ended, or asks for this very log without the admin
role. Those are appended here, one canonical JSON line each (refusals of one actor, program and
action within a minute share a line with a count; see ``pausegate.api.refusals``), on a signed,
hash-chained log (``pausegate.records``): removing, editing or reordering a line, or cutting the end,
is found. The log is a file (``api.refusal_log``, its signed head beside it) or, with several
replicas, rows of the API's database; which one is chosen by ``pausegate.api.backends``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from pausegate.models.base import Model
from pausegate.records.anchors import LogAnchor
from pausegate.records.files import FileMedium
from pausegate.records.log import ChainLog, ChainMedium

LOG_NAME = "refusals"
"""The refusal log's name in the API's database."""


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


class RefusalLog:
    """Refusal entries on a chained log in ``medium``, its head signed with ``key``."""

    def __init__(self, medium: ChainMedium, key: Ed25519PrivateKey, *, anchor: LogAnchor | None = None) -> None:
        self.chain = ChainLog(medium, key, RefusalEntry.model_validate, "a refusal entry", anchor=anchor)

    @classmethod
    def file(cls, path: Path, key: Ed25519PrivateKey) -> RefusalLog:
        """The log in the file ``path`` (its head: ``<name>.head.json`` beside it)."""
        return cls(FileMedium(path), key)

    def append(
        self, *, actor: str, roles: list[str], program: str | None, action: str, reason: str, count: int = 1
    ) -> RefusalEntry:
        """Append one line standing for ``count`` refusals (coalesced by the caller), chained and signed."""
        return self.chain.append(lambda prev: RefusalEntry(
            at=datetime.now(UTC), actor=actor, roles=sorted(roles), program=program, action=action,
            reason=reason[:2000], count=count, prev=prev,
        ))

    def entries(self) -> Iterator[RefusalEntry]:
        """Every entry, oldest first (no chain check: see ``problems``)."""
        return self.chain.entries()

    def problems(self) -> list[str]:
        """What is wrong with the log, by line; empty if every line links to the one before and the
        signed head vouches for the last."""
        return self.chain.problems()
