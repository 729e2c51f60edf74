"""Data actions a resume plan takes on what was already collected (placeholder of the shared contract:
the names and fields the resume and the watch rely on; the full module replaces it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from pausegate.models.base import Model
from pausegate.runbook.model import SLUG, SQL_IDENT, DatasetSpec

Ident = Annotated[str, StringConstraints(pattern=SQL_IDENT, max_length=63)]


class _Action(Model):
    dataset: str = Field(pattern=SLUG, max_length=63)
    table: Ident


class PurgeOlderThan(_Action):
    kind: Literal["purge_older_than"] = "purge_older_than"
    column: Ident
    cutoff: datetime


class PurgeSubjects(_Action):
    kind: Literal["purge_subjects"] = "purge_subjects"
    subject_column: Ident
    subjects: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(min_length=1,
                                                                                           max_length=1000)


class NullColumn(_Action):
    kind: Literal["null_column"] = "null_column"
    column: Ident


class DropColumn(_Action):
    kind: Literal["drop_column"] = "drop_column"
    column: Ident


class PseudonymiseColumn(_Action):
    kind: Literal["pseudonymise_column"] = "pseudonymise_column"
    column: Ident
    key_id: str = Field(pattern=SLUG, max_length=63)


DataAction = Annotated[
    PurgeOlderThan | PurgeSubjects | NullColumn | DropColumn | PseudonymiseColumn, Field(discriminator="kind")
]


class DataActionResult(Model):
    index: int
    kind: str
    dataset: str
    table: str
    column: str | None = None
    rows_affected: int
    applied_now: bool
    digest: str


class DataActionsCheck(Model):
    ok: bool
    problems: list[str] = Field(default_factory=list)
    results: list[DataActionResult] = Field(default_factory=list)


class ApplyDataActionInput(Model):
    pause_key: str
    dataset: DatasetSpec
    index: int
    action: DataAction


class VerifyDataActionsInput(Model):
    pause_key: str
    dataset: DatasetSpec
    actions: list[DataAction]


class CheckDataActionsInput(Model):
    dataset: DatasetSpec
    actions: list[DataAction]
