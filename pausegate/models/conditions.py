"""The conditions a resume plan sets and the workflow enforces: a narrower collection profile, consent,
and the plan's data actions; their activity inputs, their outcomes and the check that they hold.

Everything here may enter workflow history: names, counts, digests and the first few ids.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from pausegate.models.base import Model
from pausegate.models.collection import MAX_DATA_TYPES, DataType
from pausegate.models.data_actions import DataActionResult, DataActionsCheck
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import CollectionSpec, ConsentSpec, DatasetSpec

MAX_LISTED = 200  # ids listed in state (the same bound as the pause's); counts and evidence carry the rest
MAX_PROBLEMS = 20


class CollectionPlan(Model):
    """The data types agents capture once resumed: the fleet is set to exactly these."""

    data_types: list[DataType] = Field(max_length=MAX_DATA_TYPES)

    @field_validator("data_types")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("data types must not repeat")
        return sorted(values)


class ConsentSource(Model):
    """The runbook's consent table with the dataset (connection, schema) it lies in."""

    consent: ConsentSpec
    dataset: DatasetSpec


class ConsentRecord(Model):
    """One row of the consent table with who wrote it and when, as the database recorded them (None
    where it never did: a row written before the table recorded provenance)."""

    subject: str
    granted: bool | None
    granted_by: str | None = Field(default=None, description="The login that wrote the row (session_user).")
    granted_as: str | None = Field(default=None, description="The role the write ran as (current_user).")
    granted_at: datetime | None = Field(default=None, description="The server's clock at the write.")


class CollectedTypes(Model):
    """The runbook's map of data types to columns, with the dataset they lie in."""

    collection: CollectionSpec
    dataset: DatasetSpec


class SetCollectionInput(Model):
    """Set a program's collection profile before it is switched on again."""

    connection: str
    program: str
    incident_id: str
    data_types: list[str]


class CheckCollectionInput(Model):
    """Ask the fleet whether it knows every data type a plan names (at proposal)."""

    connection: str
    program: str
    data_types: list[str]


class HaltUnconsentedInput(Model):
    """Halt, one by one, every agent of an employee who has not consented (switch still off)."""

    connection: str
    program: str
    incident_id: str
    pause_key: str
    source: ConsentSource
    batch_size: int
    concurrency: int
    withdrawn: list[str] = Field(default_factory=list, description="Employees whose consent was withdrawn since.")
    only: list[str] | None = Field(default=None, description="Halt only these employees' agents (a consent "
                                   "withdrawn during the watch); None: every employee without consent.")
    key: str = Field(default="consent", description="Distinguishes idempotency keys of separate halts.")


class WriteWithdrawalInput(Model):
    """Write an employee's consent withdrawn during the watch back to the consent table."""

    source: ConsentSource
    employee: str


class WithdrawalWritten(Model):
    """A withdrawal as the consent table now holds it."""

    rows_changed: int = Field(description="Rows set to not granted (0: the table already said so, or had none).")
    written_at: datetime = Field(description="The database server's clock at the write.")


class ConsentOutcome(Model):
    """Who is left out of the resume for lack of consent, as counts; the names are evidence."""

    consenting_employees: int
    unconsented_employees: int = Field(description="Employees with agents and no consent.")
    agents_halted: int = Field(description="Their agents the fleet confirmed halted.")
    agents_pending: int = Field(description="Their offline agents: the halt applies when they return.")
    agent_ids: list[str] = Field(default_factory=list, description=f"First {MAX_LISTED} only.")
    document: EvidenceRef | None = Field(default=None, description="Every such agent and employee.")
    snapshot: EvidenceRef | None = Field(default=None, description="The consent table as read at the resume, "
                                         "each row with who wrote it and when (sealed; its digest is the ref's).")
    grants_not_counted: int = Field(default=0, description="Rows granting consent that were not written "
                                    "through a path the runbook allows, or whose writer is unknown.")


class ConditionsInput(Model):
    """Check that a resumed program runs under its plan's conditions."""

    connection: str
    program: str
    since: datetime = Field(description="When the program was switched on again: rows after it are checked.")
    data_types: list[str] | None = Field(default=None, description="The plan's profile; None: not narrowed.")
    consent: ConsentSource | None = None
    withdrawn: list[str] = Field(default_factory=list)
    collected: CollectedTypes | None = None
    written_since: datetime | None = Field(default=None, description="The server's clock once it stamped the "
                                           "collected tables' writes: rows it stamped since are checked too.")


class StampWritesInput(Model):
    """Have the server stamp every write to the tables where the plan's dropped data types land."""

    collected: CollectedTypes
    dropped: list[str] = Field(description="The data types the plan drops.")


class ConditionsCheck(Model):
    """What the fleet and the data say about the conditions now."""

    agents_collecting: int
    off_profile: int = Field(description="Collecting agents that report a profile other than the plan's.")
    off_profile_ids: list[str] = Field(default_factory=list)
    unconsented: int = Field(description="Collecting agents of employees without consent.")
    unconsented_ids: list[str] = Field(default_factory=list)
    dropped_rows: int = Field(description="Rows collected since the resume that carry a dropped data type.")
    dropped_types: list[str] = Field(default_factory=list, description="The dropped types found in those rows.")
    data_actions: DataActionsCheck | None = None

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        if self.off_profile:
            found.append(f"{self.off_profile} agents collect with another profile than the plan's "
                         f"({', '.join(self.off_profile_ids[:5])})")
        if self.unconsented:
            found.append(f"{self.unconsented} agents of employees without consent are collecting "
                         f"({', '.join(self.unconsented_ids[:5])})")
        if self.dropped_rows:
            found.append(f"{self.dropped_rows} rows collected since the resume carry dropped data types "
                         f"({', '.join(self.dropped_types)})")
        if self.data_actions is not None and not self.data_actions.ok:
            found.extend(self.data_actions.problems[:MAX_PROBLEMS])
        return found

    @property
    def holds(self) -> bool:
        return not self.problems


class ResumeConditions(Model):
    """What the resume did for the plan's conditions, and the check before RESUMED."""

    profile: list[str] | None = Field(default=None, description="The data types the fleet was set to.")
    consent: ConsentOutcome | None = None
    data_actions: list[DataActionResult] = Field(default_factory=list)
    check: ConditionsCheck | None = None
    written_since: datetime | None = Field(default=None, description="The server's clock once it stamped "
                                           "writes to the tables of the dropped types, before the switch went on.")
