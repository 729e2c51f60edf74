"""Break-glass access during a pause: the runbook's terms, a person's request, the grant it becomes.

A grant is its own login role in the dataset's database, with SELECT on what was asked and nothing
it can pass on; a durable timer in the pause ends it (``workflows.break_glass``). What enters
history is names, times, counts and digests: a password never does. A holder who authenticates by
password sends a SCRAM verifier (``SCRAM-SHA-256$...``), which the server stores as it is and from
which no password or client key can be derived; the password stays on the holder's machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pausegate.models.base import Model, Mutable
from pausegate.models.break_glass_spec import BreakGlassSpec
from pausegate.models.evidence import EvidenceRef
from pausegate.models.limits import MAX_NOTE
from pausegate.models.people import Actor
from pausegate.models.runbook import SLUG, SQL_IDENT, AuditSourceSpec, DatasetSpec
from pausegate.models.seals import SealedMessage

MAX_GRANT_TABLES = 50
MAX_GRANT_COPIES = 20
MAX_GRANTS = 200
"""Grants one pause keeps in its state (requests included): a bound against a flood of requests."""
MAX_VERIFIER = 300
# SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as PostgreSQL stores it: no nesting, so
# the pattern runs in linear time whatever it is given.
SCRAM_VERIFIER = r"SCRAM-SHA-256\$[0-9]{1,7}:[A-Za-z0-9+/=]{1,100}\$[A-Za-z0-9+/=]{1,100}:[A-Za-z0-9+/=]{1,100}"
REVIEW_ITEM_PREFIX = "break-glass-review-"
REVIEW_ITEM_TITLE = "break-glass use reviewed"

__all__ = ["BreakGlassSpec", "scram_verifier"]


def scram_verifier(password: str, salt: bytes, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, RFC 7677): what a holder
    sends instead of the password, made on the holder's machine."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"

Ident = Annotated[str, Field(pattern=SQL_IDENT)]


class TableAccess(Model):
    """One table (or view) of the dataset's schema, whole or some of its columns."""

    table: Ident
    columns: list[Ident] = Field(default_factory=list, max_length=100, description="Empty: every column.")


class RequestBreakGlassInput(SealedMessage):
    """Ask for read access to tables (or some of their columns) of a paused dataset."""

    actor: Actor
    dataset: str = Field(pattern=SLUG)
    tables: list[TableAccess] = Field(default_factory=list, max_length=MAX_GRANT_TABLES)
    copies: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_GRANT_COPIES,
        description="Ids of copies the pause quarantined (as the status lists them): SELECT on the copy only.")
    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    duration: timedelta
    emergency: bool = Field(default=False, description="Start at once, without approval (if the runbook allows).")
    scram_verifier: str | None = Field(
        default=None, max_length=MAX_VERIFIER,
        description="The password's SCRAM verifier; none: the database authenticates the holder another way.",
    )

    @field_validator("scram_verifier")
    @classmethod
    def _verifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(SCRAM_VERIFIER, value):
            raise ValueError("scram_verifier must be a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<i>:<salt>$<k>:<k>)")
        return value

    @model_validator(mode="after")
    def _what(self) -> RequestBreakGlassInput:
        if not self.tables and not self.copies:
            raise ValueError("name at least one table or quarantined copy")
        if len({t.table for t in self.tables}) != len(self.tables) or len(set(self.copies)) != len(self.copies):
            raise ValueError("each table and copy is named once")
        if self.duration < timedelta(seconds=1):
            raise ValueError("duration must be at least one second")
        return self


class ApproveBreakGlassInput(SealedMessage):
    """Approve a pending request: the grant starts."""

    actor: Actor
    grant_id: str = Field(min_length=1, max_length=20)


class EndBreakGlassInput(SealedMessage):
    """End a grant early (its holder, or the commander)."""

    actor: Actor
    grant_id: str = Field(min_length=1, max_length=20)
    reason: str = Field(default="returned early", min_length=1, max_length=MAX_NOTE)


GrantStatus = Literal["requested", "opening", "open", "ending", "closed", "refused"]


class GrantClosed(Model):
    """What the end of a grant did, as the database confirmed it."""

    grant_id: str
    opened: bool = Field(description="False: the grant never opened (refused by the database side).")
    reason: str = Field(default="", max_length=MAX_NOTE, description="Why it was refused, when it was.")
    logging: str = Field(default="", description="How its statements were logged: log_statement or pgaudit.")
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    sessions_terminated: int = 0
    verified: bool = False
    statements: int = Field(default=0, description="Log records of its window, sealed.")
    evidence: EvidenceRef | None = None
    reads: int = Field(default=0, description="Its statements that read the dataset and succeeded (who saw what).")
    reads_report: EvidenceRef | None = Field(default=None, description="Who saw what over its statements: the "
                                             "holder's break-glass reads, table by table.")
    ended_by: str = ""


class Grant(Mutable):
    """One request and the grant it became."""

    id: str
    holder: str
    holder_email: str | None = None
    dataset: str
    tables: list[TableAccess]
    copies: list[str] = Field(default_factory=list, description="Ids of quarantined copies it reads.")
    reason: str
    duration: timedelta
    emergency: bool = False
    scram_verifier: str | None = Field(default=None, description="Stored by the server as it is; no password "
                                       "can be derived from it (a random one, as the CLI makes, cannot be guessed). "
                                       "Held only until the grant starts.")
    requested_at: datetime
    status: GrantStatus = "requested"
    role: str = Field(description="The login role the grant is, in the dataset's database.")
    approved_by: str | None = None
    approved_by_email: str | None = Field(default=None, description="The approver's verified email: the review "
                                          "is someone else by the rule approvals follow (Actor.same_person).")
    approved_at: datetime | None = None
    ends_at: datetime | None = None
    closed: GrantClosed | None = None
    review_item: str
    started: bool = Field(default=False, description="Its workflow was started (it then ends by itself).")

    @property
    def active(self) -> bool:
        return self.status in ("opening", "open", "ending")


class BreakGlassState(Mutable):
    """Every grant of the pause (and a count per holder of those open now)."""

    grants: list[Grant] = Field(default_factory=list)

    def grant(self, grant_id: str) -> Grant | None:
        return next((g for g in self.grants if g.id == grant_id), None)

    def open_per_holder(self) -> dict[str, int]:
        """Overlapping grants of one person are counted, each ended on its own."""
        counts: dict[str, int] = {}
        for g in self.grants:
            if g.active:
                counts[g.holder] = counts.get(g.holder, 0) + 1
        return counts


class GrantTarget(Model):
    """What the grant's workflow opens and closes: names only (the worker maps the connection to a DSN)."""

    pause_key: str
    grant_id: str
    role: str = Field(pattern=SQL_IDENT)
    connection: str = Field(pattern=SLUG)
    schema_name: str = Field(pattern=SQL_IDENT)
    tables: list[TableAccess]
    copies: list[str] = Field(default_factory=list, description="Ids of quarantined copies (names stay in evidence).")
    copies_document: EvidenceRef | None = Field(default=None, description="The copies document the pause "
                                                "recorded: where each copy was quarantined.")
    scram_verifier: str | None = None
    audit_source: AuditSourceSpec | None = Field(default=None,
                                                 description="The postgres_log source sealing its window.")
    program: str
    dataset: DatasetSpec | None = Field(default=None, description="The dataset: its reads are derived with the "
                                        "scope the pause recorded for it, as who saw what derives them.")


class BreakGlassWorkflowInput(Model):
    """Start one grant's workflow: open now, close at ``ends_at`` or on an early end."""

    target: GrantTarget
    ends_at: datetime
    pause_workflow_id: str
    heartbeat_seconds: float = 5.0
    urgent_task_queue: str | None = None


class GrantOpened(Model):
    """The database side of an opened grant."""

    grant_id: str
    logging: str


class GrantRevoked(Model):
    """The database side of a closed grant: login off, privileges gone, sessions ended, verified."""

    sessions_terminated: int
    verified: bool
    problems: list[str] = Field(default_factory=list)


class SealGrantInput(Model):
    """Seal the grant's statements of its window from the server's log."""

    target: GrantTarget
    window_start: datetime
    window_end: datetime


class GrantSealed(Model):
    statements: int
    evidence: EvidenceRef
    reads: int = 0
    reads_report: EvidenceRef | None = None


class StandingException(Model):
    """A runbook's static break-glass role: access that containment keeps, shown as the exception it is,
    with what it read in the exposure window (as who saw what derived it)."""

    dataset: str
    role: str
    reads: int | None = Field(description="Statements of the role that read the dataset and succeeded; none: who saw "
                              "what is not derived yet.")
    failed: int = 0
    objects: list[str] = Field(default_factory=list, description="The dataset's tables it read.")


class BreakGlassView(Model):
    """Access during a pause as people read it: the grants, and the standing exceptions beside them."""

    grants: list[Grant]
    standing: list[StandingException]
