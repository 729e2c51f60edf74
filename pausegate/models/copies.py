"""Copies of the leaked data: what was found, from which evidence, and where each one stands.

A copy carries the dataset's rows (or rows of an earlier copy) somewhere the dataset's revoke does
not reach: a table, a materialized view, a file on the server, a client, a replica, a foreign
table on another server. Each is listed with who made it, when, how many rows it holds (when the
database can say) and its state:

* ``found``: in the database, not contained yet;
* ``quarantined``: owned by the quarantine role in the quarantine schema, verified by the database;
* ``left_database``: the rows went to a client, a program or a file the database cannot read back;
* ``server_file``: a file ``COPY TO`` wrote on the server, read back and hashed;
* ``gone``: no longer exists (dropped; a temporary table whose session ended);
* ``possible``: dynamic SQL that may have copied, found by no other means.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from pausegate.models.base import Model
from pausegate.models.data_actions import DataAction
from pausegate.models.evidence import EvidenceRef
from pausegate.models.limits import MAX_LISTED_IDS
from pausegate.models.plan import CopyDecision
from pausegate.models.runbook import AuditSourceSpec, DatasetSpec

MAX_STATEMENT_CHARS = 500  # of a statement kept beside its place in the log (the sealed log holds all of it)


class CopyKind(StrEnum):
    CREATE_TABLE_AS = "create_table_as"
    SELECT_INTO = "select_into"
    INSERT_SELECT = "insert_select"
    MERGE = "merge"
    UPDATE_FROM = "update_from"
    MATERIALIZED_VIEW = "materialized_view"
    TEMPORARY_TABLE = "temporary_table"
    COPY_TO_FILE = "copy_to_file"
    COPY_TO_PROGRAM = "copy_to_program"
    COPY_TO_CLIENT = "copy_to_client"
    CLIENT_DUMP = "client_dump"
    DYNAMIC = "dynamic"
    PUBLICATION = "publication"
    FOREIGN_TABLE = "foreign_table"
    SUBSCRIBED_TABLE = "subscribed_table"
    FINGERPRINT = "fingerprint"


CopyState = Literal["found", "quarantined", "left_database", "server_file", "gone", "possible"]
EvidenceSource = Literal["statement", "catalog", "fingerprint"]

# Kinds whose rows live in a relation the quarantine can take over.
RELATION_KINDS = frozenset({
    CopyKind.CREATE_TABLE_AS, CopyKind.SELECT_INTO, CopyKind.INSERT_SELECT, CopyKind.MERGE, CopyKind.UPDATE_FROM,
    CopyKind.MATERIALIZED_VIEW, CopyKind.FOREIGN_TABLE, CopyKind.SUBSCRIBED_TABLE, CopyKind.FINGERPRINT,
})


class CopyEvidence(Model):
    """What a copy was found from: a statement of the sealed log, or a fact of a catalog."""

    source: EvidenceSource
    at: datetime | None = None
    user: str | None = None
    session: str | None = None
    application: str | None = None
    client: str | None = Field(default=None, description="The client address the statement came from.")
    file: str | None = Field(default=None, description="The log file holding the statement.")
    offset: int | None = Field(default=None, ge=0, description="Where its line starts in that file.")
    statement: str | None = Field(default=None, description=f"Its first {MAX_STATEMENT_CHARS} characters, as text.")
    fact: str | None = Field(default=None, description="The catalog fact, for catalog and fingerprint finds.")


class Copy(Model):
    """One copy of the dataset's rows (or of an earlier copy's)."""

    id: str = Field(description="Stable for the same copy found again: kind, place and first evidence.")
    kind: CopyKind
    schema_name: str | None = Field(default=None, description="Where the copy's relation is (as found).")
    name: str | None = Field(default=None, description="The copy's relation, or the publication's name.")
    candidates: tuple[str, ...] = Field(
        default=(), description="schema.name where an unqualified name may have been created, search_path order.")
    destination: str | None = Field(default=None, description="A file, program, client or server it went to.")
    server: str | None = Field(default=None, description="The deployment's name of the server holding it.")
    creator: str | None = None
    created_at: datetime | None = None
    application: str | None = None
    client: str | None = None
    rows: int | None = Field(default=None, ge=0, description="Rows it holds, as the database counted them.")
    rows_basis: Literal["counted", "source_now"] | None = Field(
        default=None, description="counted: the copy's own rows; source_now: a whole table sent out, counted now.")
    whole_source: str | None = Field(default=None, description="The table a whole-table export sent out.")
    sources: tuple[str, ...] = Field(default=(), description="The dataset tables and copies it was made from.")
    datasets: tuple[str, ...] = Field(default=(), description="Whose data it is: the datasets it reaches.")
    via: str | None = Field(default=None, description="The view, routine or construct it read through.")
    evidence: tuple[CopyEvidence, ...] = ()
    state: CopyState = "found"
    confidence: float | None = Field(default=None, ge=0, le=1, description="For fingerprint finds.")
    quarantined_as: str | None = Field(default=None, description="schema.name in the quarantine schema.")
    file_sha256: str | None = None
    file_bytes: int | None = Field(default=None, ge=0)
    note: str | None = None

    @property
    def qualified(self) -> str | None:
        return f"{self.schema_name}.{self.name}" if self.schema_name and self.name else None


class Residual(Model):
    """A login role that still reads a contained copy, as the database answers."""

    copy_id: str
    role: str
    why: str = Field(description="superuser, pg_read_all_data, or a privilege still held.")


class CopiesFound(Model):
    """Every copy found over the window, in the order they were made."""

    copies: list[Copy]
    statements: int = Field(default=0, ge=0, description="Log statements looked at.")
    unparsed: int = Field(default=0, ge=0, description="Statements the parser could not read.")


class CopyContainment(Model):
    """What containing one copy did, verified by asking the database."""

    contained: Copy = Field(description="The copy as it stands after containing it.")
    statements: list[str] = Field(default_factory=list, description="The SQL run, in order.")
    sessions_ended: int = 0
    replication_connections_ended: int = 0
    verified: bool = False
    residual: list[Residual] = Field(default_factory=list)


# ---------------------------------------------------------------- activity messages


class FindCatalogCopiesInput(Model):
    pause_key: str
    connection: str
    schema_name: str
    tables: tuple[str, ...] = ()
    copies: tuple[Copy, ...] = Field(default=(), description="Copies found so far: a publication may carry them.")
    since_xid: int | None = Field(default=None, description="Relations made after this transaction are candidates.")


class FindCopiesElsewhereInput(Model):
    """Copies on another server the deployment names: foreign tables reading the dataset's database,
    tables its subscriptions to the found publications fill."""

    pause_key: str
    connection: str = Field(description="The deployment's connection to that other server.")
    hosts: tuple[str, ...] = Field(description="Names and addresses the dataset's server is reached by.")
    port: int = 5432
    dbname: str
    tables: tuple[str, ...] = Field(description="schema.table: the dataset's, and copies found.")
    publications: tuple[str, ...] = Field(default=(), description="Publications found carrying any of them.")


class ContainCopiesInput(Model):
    pause_key: str
    connection: str
    copies: tuple[Copy, ...]
    dataset_tables: tuple[str, ...] = Field(default=(), description="schema.table: what a publication must drop.")
    break_glass_roles: tuple[str, ...] = ()


# ---------------------------------------------------------------- the copies document and the pause's view of it


class ContainedCopy(Model):
    """One copy in the copies document: as it stands after containment, and what containing it did."""

    current: Copy = Field(description="The copy as it stands: as found, then as containment left it.")
    connection: str | None = Field(default=None, description="The deployment's connection holding it.")
    statements: list[str] = Field(default_factory=list, description="The SQL run to contain it, in order.")
    sessions_ended: int = 0
    replication_connections_ended: int = 0
    verified: bool | None = Field(default=None, description="None: not contained yet (the found document).")
    residual: list[Residual] = Field(default_factory=list)

    @property
    def contained(self) -> bool:
        """Contained as far as the database can contain it, verified by the database."""
        return bool(self.verified) and self.current.state != "found"


class CopiesDocument(Model):
    """The sealed copies document: every copy found over the window and where each stands. It names
    people, relations and statements: it stays in the evidence store, the workflow holds its reference."""

    stage: Literal["found", "contained"]
    window_start: datetime | None = None
    window_end: datetime | None = None
    statements: int = Field(default=0, ge=0, description="Log statements looked at.")
    unparsed: int = Field(default=0, ge=0)
    copies: list[ContainedCopy] = Field(default_factory=list)
    log_bundles: list[EvidenceRef] = Field(default_factory=list, description="The log's lines that name a copy "
                                           "found, sealed to find copies of copies.")
    readers_through_copies: int = Field(default=0, ge=0, description="Roles that read the data through a copy.")
    who_saw_what: EvidenceRef | None = Field(default=None, description="Who read the data through a copy, by copy.")
    data_subjects: int | None = Field(default=None, ge=0, description="People whose records the dataset or a copy "
                                      "held (runbook data_subjects).")
    data_subjects_list: EvidenceRef | None = Field(default=None, description="The owner-only document naming them.")


# Copies that still hold the data where a resume plan can act on them: each needs the plan's decision.
DECIDABLE_STATES: frozenset[str] = frozenset({"found", "quarantined", "server_file"})


class CopiesSummary(Model):
    """The copies document as the workflow may hold it: its reference, counts and copy ids (digests of
    where a copy was found, never its name)."""

    document: EvidenceRef
    stage: Literal["found", "contained"]
    found: int = Field(ge=0, description="Copies found: in the log, the catalog and elsewhere.")
    quarantined: int = Field(default=0, ge=0)
    left_database: int = Field(default=0, ge=0, description="Sent to a client, a program or a replica: for the notice.")
    possible: int = Field(default=0, ge=0, description="Dynamic SQL that may have copied.")
    gone: int = Field(default=0, ge=0, description="Dropped, or ended with their session.")
    server_files: int = Field(default=0, ge=0, description="Files on the server, read back and hashed.")
    undecided: list[str] = Field(default_factory=list, description="Ids of copies a resume plan must decide.")
    uncontained: list[str] = Field(default_factory=list, description="Ids of copies not contained and verified.")
    earlier: list[EvidenceRef] = Field(default_factory=list, description="The found document and earlier "
                                       "containment rounds' documents, so every one the pause wrote is anchored.")
    log_bundles: list[EvidenceRef] = Field(default_factory=list, description="The log's lines that name a copy "
                                           "found, sealed to find copies of copies.")
    readers_through_copies: int = Field(default=0, ge=0, description="Roles that read the data through a copy "
                                        "(who saw what, through copy X).")
    who_saw_what: EvidenceRef | None = Field(default=None, description="Who read the data through a copy, by copy.")
    data_subjects: int | None = Field(default=None, ge=0, description="People whose records the dataset or a copy "
                                      "held: the exposure's count with the subjects found in copies.")
    data_subjects_list: EvidenceRef | None = Field(default=None, description="The owner-only document naming them.")

    @property
    def complete(self) -> bool:
        return self.stage == "contained" and not self.uncontained


class CopyListing(Model):
    """One copy as people read it in the status, the API and the report (from the sealed document)."""

    id: str
    kind: CopyKind
    creator: str | None = None
    created_at: datetime | None = None
    rows: int | None = None
    state: CopyState
    where: str | None = Field(default=None, description="schema.name as found, or where it went.")
    quarantined_as: str | None = None
    server: str | None = None
    client: str | None = None
    application: str | None = None
    datasets: tuple[str, ...] = ()
    confidence: float | None = None
    note: str | None = None

    @classmethod
    def of(cls, copy: Copy) -> CopyListing:
        return cls(id=copy.id, kind=copy.kind, creator=copy.creator, created_at=copy.created_at, rows=copy.rows,
                   state=copy.state, where=copy.qualified or copy.destination or copy.name,
                   quarantined_as=copy.quarantined_as, server=copy.server, client=copy.client,
                   application=copy.application, datasets=copy.datasets, confidence=copy.confidence, note=copy.note)


def listings(document: CopiesDocument) -> list[CopyListing]:
    return [CopyListing.of(c.current) for c in document.copies]


def summarise(document: CopiesDocument, ref: EvidenceRef) -> CopiesSummary:
    """Counts and ids only: the workflow's history holds no name."""
    states = [c.current.state for c in document.copies]
    uncontained = ([c.current.id for c in document.copies if c.current.state == "found" or c.verified is False]
                   if document.stage == "contained" else [])
    return CopiesSummary(
        document=ref, stage=document.stage, found=len(document.copies), quarantined=states.count("quarantined"),
        left_database=states.count("left_database"), possible=states.count("possible"), gone=states.count("gone"),
        server_files=states.count("server_file"),
        undecided=[c.current.id for c in document.copies if c.current.state in DECIDABLE_STATES][:MAX_LISTED_IDS],
        uncontained=uncontained[:MAX_LISTED_IDS], log_bundles=document.log_bundles,
        readers_through_copies=document.readers_through_copies, who_saw_what=document.who_saw_what,
        data_subjects=document.data_subjects, data_subjects_list=document.data_subjects_list,
    )


class FindPauseCopiesInput(Model):
    """Find the copies of a pause's datasets made in its window: the sealed statement log first, then
    each dataset's catalog, then the servers the deployment names. Seals the found document."""

    pause_key: str
    bundles: list[str] = Field(default_factory=list, description="Evidence keys of sealed postgres_log bundles.")
    datasets: list[DatasetSpec]
    window_start: datetime | None = None
    window_end: datetime | None = None
    paused_at: datetime | None = Field(default=None, description="From then on, the statements of the role "
                                       "pausegate connects as are containment's own, not copies.")
    program: str = ""
    log_sources: list[AuditSourceSpec] = Field(default_factory=list, description="The database logs read again "
                                               "for the lines that name a copy found (copies of copies).")


class SettledCopy(Model):
    """What the resume did with one copy, as the database confirmed it."""

    copy_id: str
    action: Literal["drop", "purge", "keep_quarantined", "waive"]
    rows_deleted: int = Field(default=0, ge=0)
    verified: bool
    note: str | None = None


class SettleCopiesInput(Model):
    """Do what the plan decided for each copy of the copies document (names stay in the document)."""

    pause_key: str
    document: EvidenceRef
    decisions: list[CopyDecision]
    data_actions: list[DataAction] = Field(default_factory=list)
    datasets: list[DatasetSpec]


class ContainPauseCopiesInput(Model):
    """Contain each copy the found document lists; seals the copies document of this round."""

    pause_key: str
    found: EvidenceRef
    datasets: list[DatasetSpec]
    round: int = Field(default=0, ge=0, description="One copies document per containment round.")
