"""The runbook: what a program is, how to contain it, how to review and resume it.

A runbook names connections (``telemetry-db``), never credentials: the worker's
configuration maps connection names to DSNs, URLs and tokens, so a runbook and the
workflow history that carries it hold no secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from pausegate.models.base import Model
from pausegate.models.break_glass_spec import BreakGlassSpec
from pausegate.models.collection import DATA_TYPE, MAX_DATA_TYPES

SLUG = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# PostgreSQL identifiers as the runbook may name them: unquoted, lower case.
SQL_IDENT = r"^[a-z_][a-z0-9_$]{0,62}$"
# Enough for any real log; at a few thousand parses a second, well inside the step's hour (bench_who_saw_what).
DEFAULT_STATEMENT_BUDGET = 1_000_000

Slug = str


class Program(Model):
    """The data-collection program a pause stops."""

    id: str = Field(pattern=SLUG, description="Stable identifier; the pause's workflow id is pause/<id>.")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    owner: str = Field(default="", max_length=200, description="Team or person accountable for the program.")


class WritesSpec(Model):
    """Where the program's agents write what they collect: after the halt the dataset is asked for rows
    written after the switch went off, so that "no new data" is a measured fact."""

    dataset: str = Field(pattern=SLUG, description="A dataset of this runbook (its connection and schema are used).")
    tables: list[Annotated[str, Field(pattern=SQL_IDENT)]] = Field(
        min_length=1, max_length=100, description="The tables the agents write to."
    )
    written_at: str = Field(pattern=SQL_IDENT, description="The column holding when each row was collected.")


class FleetSpec(Model):
    """The collection agents of the program and how to halt them."""

    connection: str = Field(pattern=SLUG, description="Name of a fleet connection in the worker configuration.")
    batch_size: int = Field(default=500, ge=1, le=5000, description="Agents per bulk halt/resume request.")
    concurrency: int = Field(default=4, ge=1, le=64, description="Bulk requests in flight at once.")
    writes: WritesSpec | None = Field(
        default=None, description="What the agents write; without it the data stop is not measured."
    )


class DataSubjectsSpec(Model):
    """Whose data a dataset holds: the column naming the person each row is about."""

    column: str = Field(pattern=SQL_IDENT, description="The column naming the person (e.g. employee).")
    collected_at: str | None = Field(
        default=None, pattern=SQL_IDENT,
        description="A time column: rows collected after the exposure window closed were never exposed.",
    )


class DatasetSpec(Model):
    """A dataset whose access is revoked during a pause."""

    name: str = Field(pattern=SLUG)
    connection: str = Field(pattern=SLUG, description="Name of a postgres connection in the worker configuration.")
    schema_name: str = Field(alias="schema", pattern=SQL_IDENT)
    tables: list[str] = Field(
        default_factory=list,
        description="Tables (and views) of the dataset; empty means every relation in the schema.",
    )
    break_glass_roles: list[str] = Field(
        default_factory=list, description="Roles that keep access during a pause (incident response)."
    )
    data_subjects: DataSubjectsSpec | None = Field(
        default=None,
        description="Whose data it is: the people whose rows were readable in the exposure window are counted "
        "(the list is kept as owner-only evidence).",
    )

    model_config = Model.model_config | {"populate_by_name": True}

    @field_validator("tables", "break_glass_roles")
    @classmethod
    def _identifiers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(SQL_IDENT, value):
                raise ValueError(f"{value!r} is not a plain lower-case SQL identifier")
        if len(set(values)) != len(values):
            raise ValueError("names must not repeat")
        return values


class AuditSourceSpec(Model):
    """Where records of who touched the data come from."""

    name: str = Field(pattern=SLUG)
    kind: Literal["postgres_log", "fleet", "jsonl"]
    connection: str | None = Field(default=None, pattern=SLUG, description="For postgres_log and fleet.")
    path: str | None = Field(default=None, description="For jsonl: a file or glob on the worker.")

    @model_validator(mode="after")
    def _target(self) -> AuditSourceSpec:
        if self.kind in ("postgres_log", "fleet") and not self.connection:
            raise ValueError(f"an audit source of kind {self.kind} needs a connection")
        if self.kind == "jsonl" and not self.path:
            raise ValueError("an audit source of kind jsonl needs a path")
        return self


class ExposureSpec(Model):
    """The window whose audit records are sealed as evidence."""

    start: datetime | None = Field(
        default=None, description="When the exposure began; default: lookback before the pause."
    )
    lookback: timedelta = Field(default=timedelta(days=30), description="Used when start is not known.")
    statement_budget: int = Field(
        default=DEFAULT_STATEMENT_BUDGET, ge=1_000, le=100_000_000,
        description="Distinct statements who-saw-what parses at most; the rest are counted unparsed, by "
        "user and place, so a flood of distinct statements cannot keep the exposure step from finishing.",
    )


class ChecklistItemSpec(Model):
    """One step of the security review."""

    id: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=4000)
    roles: list[str] = Field(min_length=1, description="Roles that may complete the item.")
    depends_on: list[str] = Field(default_factory=list, description="Items that must be complete first.")
    evidence: list[str] = Field(
        default_factory=list, description="Names of the evidence a completion must attach (e.g. access-report)."
    )
    due: timedelta | None = Field(default=None, description="Due this long after the pause began (ISO 8601).")


class SeparationOfDuties(Model):
    """Who must not approve. People are compared by their verified identity (``local:<name>``,
    ``oidc:<issuer>#<sub>``), and two OIDC identities with the same verified email are one person."""

    commander_cannot_approve: bool = Field(default=True, description="Whoever paused does not approve the resume.")
    proposer_cannot_approve: bool = Field(
        default=True, description="Whoever proposed the plan does not approve it: nobody signs off their own plan."
    )
    one_approval_per_role: bool = Field(default=True, description="Each approval must come from a different role.")


class ResumePolicy(Model):
    """Who approves a resume plan (or decommissioning), and how many."""

    approver_roles: list[str] = Field(min_length=1)
    quorum: int = Field(ge=1)
    proposer_roles: list[str] = Field(min_length=1, description="Roles that may propose a resume plan.")
    separation_of_duties: SeparationOfDuties = Field(default_factory=SeparationOfDuties)
    forbid_public_grants: bool = Field(default=True, description="A plan may never re-grant to PUBLIC.")
    allowed_grantee_roles: list[str] | None = Field(
        default=None, description="If set, a plan may grant only to these roles."
    )
    signatures: Literal["optional", "required"] = Field(
        default="optional", description="required: only approvals the approver signed with an enrolled passkey or "
        "SSH key count toward the quorum; optional: token-only approvals count too.")

    @model_validator(mode="after")
    def _reachable(self) -> ResumePolicy:
        if self.quorum > len(self.approver_roles) and self.separation_of_duties.one_approval_per_role:
            raise ValueError(
                f"quorum {self.quorum} cannot be met by {len(self.approver_roles)} approver roles "
                "when each role approves once"
            )
        return self


class Roles(Model):
    """Roles with powers outside the checklist."""

    commander: list[str] = Field(
        default_factory=lambda: ["incident-commander"],
        description="Roles that may pull the kill switch and waive unreachable agents.",
    )


class NotificationSpec(Model):
    """A webhook told of every state change."""

    name: str = Field(pattern=SLUG)
    kind: Literal["webhook"] = "webhook"
    connection: str = Field(pattern=SLUG)


class ConsentSpec(Model):
    """Where employees' consent to collection is recorded: a table in one of the runbook's datasets,
    read when a resume plan restarts only consenting employees' agents (and by the watch after it)."""

    dataset: str = Field(pattern=SLUG, description="A dataset of this runbook (its connection is used).")
    table: str = Field(pattern=SQL_IDENT, description="In the dataset's schema.")
    subject_column: str = Field(pattern=SQL_IDENT, description="Names the employee, as the fleet's agents do.")
    granted_column: str = Field(
        pattern=SQL_IDENT, description="Boolean: true when consent is given. No row, or false: no consent."
    )
    granting_roles: list[str] = Field(
        default_factory=list, max_length=20,
        description="The database roles a grant of consent must be written as (current_user, recorded by the "
                    "database) to count: the path the runbook allows. Empty: any role's grant counts.",
    )

    @field_validator("granting_roles")
    @classmethod
    def _role_names(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(SQL_IDENT, value):
                raise ValueError(f"{value!r} is not a role name")
        return values


class DataTypeColumns(Model):
    """Where one data type the fleet captures lands: columns of a table of the collection's dataset."""

    table: str = Field(pattern=SQL_IDENT)
    columns: list[str] = Field(min_length=1, max_length=20)

    @field_validator("columns")
    @classmethod
    def _identifiers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(SQL_IDENT, value):
                raise ValueError(f"{value!r} is not a plain lower-case SQL identifier")
        return values


class CollectionSpec(Model):
    """The data types the fleet captures, and where each lands in a dataset: a type a resume plan drops
    is checked there (no row collected after the resume may carry it)."""

    dataset: str = Field(pattern=SLUG)
    collected_at: str = Field(pattern=SQL_IDENT, description="The time column of every listed table.")
    data_types: dict[Annotated[str, StringConstraints(pattern=DATA_TYPE)], DataTypeColumns] = Field(
        min_length=1, max_length=MAX_DATA_TYPES
    )


class WatchSpec(Model):
    """After a resume: how long the plan's conditions are watched, and how often they are checked."""

    period: timedelta = Field(default=timedelta(days=30), description="From RESUMED (ISO 8601, e.g. P30D).")
    interval: timedelta = Field(default=timedelta(hours=1), description="Between two checks (e.g. PT1H).")
    consent_roles: list[str] = Field(
        default_factory=lambda: ["privacy-officer"], min_length=1,
        description="Roles that may record an employee's withdrawn consent during the watch.",
    )
    failed_checks: int = Field(
        default=3, ge=1, le=1000,
        description="Consecutive checks that cannot run which count as drift: the switch is pulled again.",
    )

    @model_validator(mode="after")
    def _sensible(self) -> WatchSpec:
        if self.interval < timedelta(seconds=1):
            raise ValueError("interval must be at least one second")
        if self.period < self.interval:
            raise ValueError("period must be at least one interval")
        return self


AGENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_CANARY_AGENTS = 100


class CanarySpec(Model):
    """The scope a drill practises on: a few agents, canary tables with the same grants pattern as the
    real data, and the roles that read them. A drill halts, revokes and restores only this."""

    agents: list[Annotated[str, Field(pattern=AGENT_ID)]] = Field(
        min_length=1, max_length=MAX_CANARY_AGENTS, description="Ids of the fleet's canary agents."
    )
    connection: str = Field(pattern=SLUG, description="Name of a postgres connection in the worker configuration.")
    schema_name: str = Field(alias="schema", pattern=SQL_IDENT)
    tables: list[Annotated[str, Field(pattern=SQL_IDENT)]] = Field(
        default_factory=list, max_length=100, description="Canary tables; empty means the whole canary schema."
    )
    readers: list[Annotated[str, Field(pattern=SQL_IDENT)]] = Field(
        min_length=1, max_length=20, description="Canary reader roles: the prober reads as them."
    )
    watched_readers: list[Annotated[str, Field(pattern=SQL_IDENT)]] = Field(
        default_factory=list, max_length=20,
        description="Non-canary readers of the program's datasets: one of them refused during a drill stops it.",
    )
    hold: timedelta = Field(default=timedelta(seconds=10), description="How long the canary stays contained.")
    schedule: str | None = Field(
        default=None, max_length=100, pattern=r"^[0-9*/,\- ]{1,100}$",
        description="A cron expression (five fields): drills the deployment runs on its own.",
    )

    model_config = Model.model_config | {"populate_by_name": True}

    @field_validator("agents", "tables", "readers", "watched_readers")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("names must not repeat")
        return values

    @model_validator(mode="after")
    def _readers_apart(self) -> CanarySpec:
        both = sorted(set(self.readers) & set(self.watched_readers))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both canary and watched readers")
        return self

    def dataset(self) -> DatasetSpec:
        """The canary as a dataset a drill contains: no break-glass role keeps access to it."""
        return DatasetSpec(name=CANARY_DATASET, connection=self.connection, schema=self.schema_name,
                           tables=list(self.tables))


CANARY_DATASET = "canary"


def canary_overlaps(runbook: Runbook) -> list[str]:
    """Why the runbook's canary is not only a canary (empty: it is): a table of a dataset, a
    break-glass role, a dataset named like the canary."""
    canary = runbook.canary
    if canary is None:
        return []
    problems: list[str] = []
    for d in runbook.datasets:
        if d.name == CANARY_DATASET:
            problems.append(f"dataset {d.name!r} takes the canary's name")
        if d.connection != canary.connection or d.schema_name != canary.schema_name:
            continue
        shared = sorted(set(d.tables) & set(canary.tables))
        if not d.tables or not canary.tables or shared:
            what = ", ".join(shared) if shared else f"schema {d.schema_name}"
            problems.append(f"canary overlaps dataset {d.name!r} ({what})")
    for d in runbook.datasets:
        glass = sorted(set(d.break_glass_roles) & set(canary.readers))
        if glass:
            problems.append(f"canary readers are break-glass roles of dataset {d.name!r}: {', '.join(glass)}")
    return problems


class Runbook(Model):
    """Everything pausegate needs to know to pause, review and resume one program."""

    api_version: Literal["pausegate/v1"] = Field(default="pausegate/v1", alias="apiVersion")
    program: Program
    fleet: FleetSpec
    datasets: list[DatasetSpec] = Field(min_length=1)
    audit_sources: list[AuditSourceSpec] = Field(default_factory=list)
    exposure: ExposureSpec = Field(default_factory=ExposureSpec)
    roles: Roles = Field(default_factory=Roles)
    checklist: list[ChecklistItemSpec] = Field(min_length=1)
    resume_policy: ResumePolicy
    notifications: list[NotificationSpec] = Field(default_factory=list)
    consent: ConsentSpec | None = Field(default=None, description="Where consent to collection is recorded.")
    collection: CollectionSpec | None = Field(default=None, description="Where each collected data type lands.")
    watch: WatchSpec | None = Field(default=None, description="Watching a resumed program; none: no watch.")
    break_glass: BreakGlassSpec | None = Field(
        default=None, description="Access during a pause by request, for a time; none: only the standing roles."
    )
    canary: CanarySpec | None = Field(default=None, description="The scope drills practise on; none: no drills.")

    model_config = Model.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _consistent(self) -> Runbook:
        problems: list[str] = []
        for what, names in (
            ("dataset", [d.name for d in self.datasets]),
            ("audit source", [a.name for a in self.audit_sources]),
            ("checklist item", [c.id for c in self.checklist]),
            ("notification", [n.name for n in self.notifications]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    problems.append(f"{what} {name!r} is defined twice")
                seen.add(name)
        writes = self.fleet.writes
        if writes is not None and writes.dataset not in {d.name for d in self.datasets}:
            problems.append(f"fleet.writes names unknown dataset {writes.dataset!r}")
        ids = {c.id for c in self.checklist}
        for item in self.checklist:
            for dep in item.depends_on:
                if dep not in ids:
                    problems.append(f"checklist item {item.id!r} depends on unknown item {dep!r}")
                if dep == item.id:
                    problems.append(f"checklist item {item.id!r} depends on itself")
        datasets = {d.name for d in self.datasets}
        for what, spec in (("consent", self.consent), ("collection", self.collection)):
            if spec is not None and spec.dataset not in datasets:
                problems.append(f"{what} names unknown dataset {spec.dataset!r}")
        problems += canary_overlaps(self)
        cycle = _find_cycle({c.id: c.depends_on for c in self.checklist})
        if cycle:
            problems.append("checklist dependencies form a cycle: " + " -> ".join(cycle))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def item(self, item_id: str) -> ChecklistItemSpec | None:
        """The checklist item with this id, if any."""
        return next((c for c in self.checklist if c.id == item_id), None)


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path of ids, or None.

    Iterative: a long chain of items must not exhaust the interpreter's stack.
    """
    state: dict[str, int] = {}
    for start in graph:
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        while stack:
            node, edges = stack[-1]
            for nxt in edges:
                if nxt not in graph or nxt == node:
                    continue
                if state.get(nxt) == 1:
                    path = [n for n, _ in stack]
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(graph[nxt])))
                    break
            else:
                state[node] = 2
                stack.pop()
    return None
