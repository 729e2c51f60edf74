"""The copies finder's working records: a copy being found, a session's state, a message whose
outcome is not known yet. Mutable, private to one ``CopyFinder`` run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pausegate.analysis.copies_sql import Relation, Target
from pausegate.analysis.statement_reads import DEFAULT_SEARCH_PATH, Read
from pausegate.models.copies import CopyEvidence, CopyKind, CopyState


@dataclass
class FoundCopy:
    key: str
    kind: CopyKind
    state: CopyState
    relation: Relation | None = None
    candidates: tuple[str, ...] = ()
    destination: str | None = None
    session: str | None = None  # temporary copies live in one session
    creator: str | None = None
    created_at: datetime | None = None
    application: str | None = None
    client: str | None = None
    sources: dict[str, None] = field(default_factory=dict)
    datasets: dict[str, None] = field(default_factory=dict)
    via: str | None = None
    evidence: list[CopyEvidence] = field(default_factory=list)
    times: int = 0
    note: str | None = None
    whole_source: str | None = None
    id: str = ""


@dataclass
class SessionState:
    path: tuple[str, ...] = DEFAULT_SEARCH_PATH
    local_path: tuple[str, ...] | None = None
    temps: dict[str, str | None] = field(default_factory=dict)  # temporary table -> its copy's key, if one
    in_tx: bool = False
    tx_failed: bool = False
    tx_undo: list[Callable[[], None]] = field(default_factory=list)
    prepared: dict[str, tuple[Target | None, list[Read]]] = field(default_factory=dict)  # PREPARE name -> what it does


@dataclass
class HeldMessage:
    """A message whose outcome is told by its session's next line."""

    line_num: int | None
    undo: list[Callable[[], None]]  # what to take back if it failed, in the order it was done


@dataclass(frozen=True)
class StatementContext:
    session_id: str
    user: str | None
    at: datetime
    application: str | None
    client: str | None
    file: str | None
    offset: int | None
    statement: str
    line_num: int | None


@dataclass
class PendingCopy:
    kind: CopyKind
    state: CopyState
    reads: list[Read] = field(default_factory=list)
    relation: Relation | None = None
    candidates: tuple[str, ...] = ()
    destination: str | None = None
    note: str | None = None
    whole_source: str | None = None
    temp: bool = False
    key_place: bool = False


def executed(read: Read) -> Read:
    """A prepared statement's read once executed: no longer a definition's possible read."""
    if read.how == "possible" and (read.via or "").startswith("definition of "):
        return Read(object=read.object, how="direct", via=None)
    return read
