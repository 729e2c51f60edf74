"""Data actions a resume plan takes on what was already collected: purge, null, drop, pseudonymise.

Each action names its dataset, table and column; it runs once, inside the pause, before access is
restored, and its effect is verified in the database. Every kind destroys information that cannot be
brought back (pseudonymising replaces the original value), so every kind is shown to approvers as
destructive and passes through the runbook's quorum with the rest of the plan.

Everything here may enter workflow history: names, an absolute cutoff, subject ids the plan itself
lists, a key id (never a key), counts and digests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, field_validator

from pausegate.canonical import canonical_json, sha256_hex
from pausegate.models.base import Model
from pausegate.models.runbook import SLUG, SQL_IDENT, DatasetSpec

# The patterns are compiled by pydantic-core's Rust regex engine: linear time, no backtracking.
Ident = Annotated[str, StringConstraints(pattern=SQL_IDENT, max_length=63)]
KeyId = Annotated[str, StringConstraints(pattern=SLUG, max_length=63)]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=200)]

MAX_SUBJECTS = 1000
"""Subjects one purge may name (the list enters the plan and history; more belong in several actions)."""

PSEUDONYM_HEX_LENGTH = 64
"""A pseudonym is the lower-case hex of an HMAC-SHA256."""


class _Action(Model):
    dataset: str = Field(pattern=SLUG, max_length=63, description="A dataset of the runbook.")
    table: Ident

    @property
    def destructive(self) -> bool:
        """Whether the action destroys data that cannot be restored (shown to approvers as such)."""
        return True

    @property
    def target_column(self) -> str | None:
        """The column the action acts on or selects rows by."""
        return None

    @property
    def qualified(self) -> str:
        column = self.target_column
        return f"{self.dataset}.{self.table}" + (f".{column}" if column else "")

    def describe(self) -> str:
        """One line for people: what the action does, to what."""
        raise NotImplementedError


class PurgeOlderThan(_Action):
    """Delete every row whose timestamp column is before an absolute cutoff fixed in the plan."""

    kind: Literal["purge_older_than"] = "purge_older_than"
    column: Ident = Field(description="The timestamp column rows are aged by.")
    cutoff: AwareDatetime = Field(description="Absolute, with a time zone: rows before it are deleted.")

    @property
    def target_column(self) -> str | None:
        return self.column

    def describe(self) -> str:
        return f"delete rows of {self.dataset}.{self.table} with {self.column} before {self.cutoff.isoformat()}"


class PurgeSubjects(_Action):
    """Delete every row about the named data subjects."""

    kind: Literal["purge_subjects"] = "purge_subjects"
    subject_column: Ident = Field(description="The column naming the person each row is about.")
    subjects: list[Subject] = Field(min_length=1, max_length=MAX_SUBJECTS)

    @field_validator("subjects")
    @classmethod
    def _distinct(cls, subjects: list[str]) -> list[str]:
        # Sorted and distinct: the digest does not depend on how the plan listed them.
        return sorted(set(subjects))

    @property
    def target_column(self) -> str | None:
        return self.subject_column

    def describe(self) -> str:
        return (
            f"delete rows of {self.dataset}.{self.table} about {len(self.subjects)} "
            f"subject{'s' if len(self.subjects) != 1 else ''} (by {self.subject_column})"
        )


class NullColumn(_Action):
    """Set a column to NULL in every row."""

    kind: Literal["null_column"] = "null_column"
    column: Ident

    @property
    def target_column(self) -> str | None:
        return self.column

    def describe(self) -> str:
        return f"null {self.dataset}.{self.table}.{self.column} in every row"


class DropColumn(_Action):
    """Drop a column from the table."""

    kind: Literal["drop_column"] = "drop_column"
    column: Ident

    @property
    def target_column(self) -> str | None:
        return self.column

    def describe(self) -> str:
        return f"drop column {self.dataset}.{self.table}.{self.column}"


class PseudonymiseColumn(_Action):
    """Replace every value of a column by its keyed pseudonym: hex HMAC-SHA256 under the configured key."""

    kind: Literal["pseudonymise_column"] = "pseudonymise_column"
    column: Ident
    key_id: KeyId = Field(description="A key of the deployment's pseudonym_keys (the key itself never leaves it).")

    @property
    def target_column(self) -> str | None:
        return self.column

    def describe(self) -> str:
        return f"replace {self.dataset}.{self.table}.{self.column} by HMAC-SHA256 pseudonyms (key {self.key_id})"


DataAction = Annotated[
    PurgeOlderThan | PurgeSubjects | NullColumn | DropColumn | PseudonymiseColumn, Field(discriminator="kind")
]


def action_digest(action: PurgeOlderThan | PurgeSubjects | NullColumn | DropColumn | PseudonymiseColumn) -> str:
    """The action's identity: SHA-256 of its canonical JSON (the ledger's key within a pause)."""
    return sha256_hex(canonical_json(action.model_dump(mode="json")))


def approver_line(action: PurgeOlderThan | PurgeSubjects | NullColumn | DropColumn | PseudonymiseColumn) -> str:
    """How the action is shown to approvers."""
    if action.destructive:
        return f"DESTRUCTIVE: {action.describe()} (cannot be undone)"
    return action.describe()


def unknown_datasets(actions: list[DataAction], datasets: list[str]) -> list[str]:
    """Problems of actions naming a dataset the runbook does not define."""
    known = set(datasets)
    return [
        f"data_actions[{i}] ({a.describe()}): dataset {a.dataset!r} is not one of the runbook's "
        f"({', '.join(sorted(known)) or 'none'})"
        for i, a in enumerate(actions)
        if a.dataset not in known
    ]


class DataActionResult(Model):
    """What applying one action did (recorded in the dataset's ledger in the same transaction)."""

    index: int = Field(ge=0, description="The action's position in the plan.")
    kind: str
    dataset: str
    table: str
    column: str | None = None
    rows_affected: int = Field(ge=0, description="Rows deleted or rewritten; for a drop, values it held.")
    applied_now: bool = Field(description="False when an earlier attempt had already applied it.")
    digest: str = Field(description="Digest of the action (canonical JSON).")
    applied_at: datetime | None = Field(default=None, description="When it was committed, by the database.")


class DataActionsCheck(Model):
    """Whether the plan's data actions hold in the database now, with what each did."""

    ok: bool
    problems: list[str] = Field(default_factory=list)
    results: list[DataActionResult] = Field(default_factory=list)


class ApplyDataActionInput(Model):
    pause_key: str = Field(min_length=1, max_length=300)
    dataset: DatasetSpec
    index: int = Field(ge=0)
    action: DataAction


class VerifyDataActionsInput(Model):
    pause_key: str = Field(min_length=1, max_length=300)
    dataset: DatasetSpec
    actions: list[DataAction] = Field(max_length=50)


class CheckDataActionsInput(Model):
    dataset: DatasetSpec
    actions: list[DataAction] = Field(max_length=50)
