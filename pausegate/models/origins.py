"""When and how the data became readable: each access path's openings, found in the statement log.

``OriginDocument`` is sealed as evidence (it names roles and holds statements); ``OriginSummary`` is
what the pause's state and history hold of it: counts, times and references only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pausegate.models.base import Model
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import AuditSourceSpec, DatasetSpec

PathKind = Literal["grant", "membership", "view", "matview", "function", "default_privileges", "owner", "rls_off"]
Origin = Literal["logged", "before_log", "unknown"]
MAX_STATEMENT_CHARS = 4000  # of a statement shown in the document; the sealed line holds all of it
CAUSE_ITEM = "root-cause"
"""The checklist item the derived cause is shown beside (the worked example's runbook calls its root-cause
analysis so): the faces put what the statement log shows next to whatever a reviewer attaches to it."""


class LoggedStatement(Model):
    """A statement as the server logged it: who ran it, as which role, from where, when, and where its
    line lies in the sealed log (the line itself is in the bundle, byte for byte)."""

    at: datetime
    user: str = Field(description="The session user the server logged.")
    role: str = Field(description="The role in force (SET ROLE), else the session user.")
    client: str | None = None
    application: str | None = None
    session: str = ""
    bundle: str | None = Field(default=None, description="The sealed bundle holding the line.")
    file: str = ""
    offset: int = 0
    line_sha256: str = Field(default="", description="SHA-256 of the original line's bytes.")
    statement: str = Field(description=f"The statement's text (at most {MAX_STATEMENT_CHARS} characters), as text.")


class Interval(Model):
    """One stretch of time a path was open: from its opening (None: open before the oldest line) to its
    closing (None: still open at the window's end)."""

    opened_at: datetime | None = None
    opened_by: LoggedStatement | None = None
    closed_at: datetime | None = None
    closed_by: LoggedStatement | None = None


class PathOrigin(Model):
    """One path of the recorded exposure scope and when it was open."""

    id: str = Field(description="kind:object:role")
    kind: PathKind
    object: str
    role: str = Field(description="The grantee, member, owner or creator; PUBLIC for every role.")
    via: str | None = Field(default=None, description="The group of a membership, the tables an exposer reaches.")
    company_wide: bool = Field(default=False, description="Opens the data to PUBLIC or to a group role.")
    origin: Origin
    intervals: list[Interval] = Field(default_factory=list)
    suspects: int = Field(default=0, description="Statements the parser could not read, or dynamic SQL, that name "
                          "the path: its origin may lie in one of them.")

    def describe(self) -> str:
        what = {"grant": "SELECT granted to", "membership": "membership of", "view": "view owned by",
                "matview": "materialized view owned by", "function": "routine owned by",
                "default_privileges": "default privileges for", "owner": "owned by",
                "rls_off": "row security off, for"}[self.kind]
        return f"{self.object}: {what} {self.role}" + (f" (in {self.via})" if self.kind == "membership" else "")


class UnreadStatement(Model):
    """A sealed statement the parser could not read: kept and counted, never guessed at."""

    at: datetime
    user: str
    file: str
    offset: int
    error: str


class Headline(Model):
    """The earliest company-wide opening: readable since …, by …, through …"""

    since: datetime | None = Field(description="None: open before the oldest line.")
    before: datetime | None = Field(default=None, description="The oldest line, when the opening is older.")
    by: str | None = None
    role: str | None = None
    through: str = Field(description="The path, described.")
    statement: str | None = None
    path: str
    until: datetime | None = None
    duration_seconds: float | None = None

    def sentence(self) -> str:
        since = f"since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since is not None else (
            f"since before {self.before:%Y-%m-%d %H:%M:%S} UTC (the oldest line of the log)" if self.before
            else "since before the log")
        by = f", by {self.by}" + (f" (as {self.role})" if self.role and self.role != self.by else "") if self.by else ""
        return f"readable company-wide {since}{by}, through {self.through}"


class OriginDocument(Model):
    """The sealed origin document of one pause."""

    window_start: datetime
    window_end: datetime
    oldest_line: datetime = Field(description="The oldest line read: openings before it cannot be shown.")
    statements: int
    unparsed: int
    unparsed_statements: list[UnreadStatement] = Field(default_factory=list)
    paths: list[PathOrigin]
    headline: Headline | None = None
    until: datetime | None = Field(default=None, description="The last moment a path of the exposure was open "
                                   "(owners, break-glass and the roles meant to read left out).")
    log_bundles: list[EvidenceRef] = Field(default_factory=list)


class SealedLog(Model):
    """A database log's lines read for the origins, sealed: named by the pause's record, as its bundles are."""

    source: str
    bundle: EvidenceRef


class OriginSummary(Model):
    """What the pause's state holds of the origins: counts, times and the document's reference."""

    document: EvidenceRef
    paths: int
    logged: int = Field(description="Paths whose opening the log shows.")
    before_log: int = Field(description="Paths open before the oldest line.")
    unknown: int = Field(description="Paths whose opening may lie in a statement that could not be read.")
    intervals: int
    unparsed: int
    oldest_line: datetime
    readable_since: datetime | None = Field(default=None, description="The earliest company-wide opening.")
    since_before_log: bool = Field(default=False, description="The earliest company-wide path predates the log.")
    until: datetime | None = None
    duration_seconds: float | None = None
    logs: list[SealedLog] = Field(default_factory=list, description="The log lines read, sealed per source.")


class DeriveOriginsInput(Model):
    """Derive the origins of a pause's exposure from the statement log."""

    pause_key: str
    program: str
    datasets: list[DatasetSpec]
    log_sources: list[AuditSourceSpec]
    bundles: list[str] = Field(default_factory=list, description="The exposure's sealed postgres_log bundles, read "
                               "when a source's log cannot be read again.")
    window_start: datetime
    window_end: datetime
    intended_roles: list[str] = Field(default_factory=list, description="Roles meant to read (the runbook's allowed "
                                      "grantees): their grants are paths, never the company-wide leak.")


def summarise(document: OriginDocument, ref: EvidenceRef) -> OriginSummary:
    h = document.headline
    return OriginSummary(
        document=ref, paths=len(document.paths),
        logged=sum(p.origin == "logged" for p in document.paths),
        before_log=sum(p.origin == "before_log" for p in document.paths),
        unknown=sum(p.origin == "unknown" for p in document.paths),
        intervals=sum(len(p.intervals) for p in document.paths), unparsed=document.unparsed,
        oldest_line=document.oldest_line, readable_since=h.since if h else None,
        since_before_log=h is not None and h.since is None, until=document.until,
        duration_seconds=h.duration_seconds if h else None,
        logs=[SealedLog(source=b.key.rpartition("/")[2], bundle=b) for b in document.log_bundles],
    )
