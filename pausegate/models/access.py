"""Dataset access as data: the exposure scope, grants to restore, containment results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from pausegate.models.base import Model
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import SLUG, SQL_IDENT

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")


class AccessPath(StrEnum):
    """How a role reaches a dataset object."""

    DIRECT = "direct"  # a grant to the role itself
    PUBLIC = "public"  # a grant to PUBLIC, i.e. every role
    MEMBERSHIP = "membership"  # inherited through membership of a role that has a grant
    OWNER = "owner"  # owns the object (or is a member of the owning role)
    SUPERUSER = "superuser"  # bypasses every check; cannot be revoked
    PREDEFINED = "predefined"  # pg_read_all_data / pg_write_all_data
    DEFAULT_PRIVILEGES = "default_privileges"  # would be granted on future tables
    FUNCTION = "function"  # EXECUTE on a SECURITY DEFINER function that reads the dataset
    OTHER = "other"  # the database says yes but no recorded path explains it


# Paths that no REVOKE can close: reported by name and accepted when already present before containment.
UNREVOCABLE_PATHS = frozenset({AccessPath.SUPERUSER, AccessPath.OWNER})


class GrantRecord(Model):
    """One privilege on one object, as the catalog recorded it before containment."""

    object: str = Field(description="schema.name of the table, view or sequence")
    object_kind: str = Field(default="table")
    grantee: str = Field(description="Role name, or PUBLIC")
    grantor: str
    privilege: str
    column: str | None = None
    grantable: bool = False


class RoleAccess(Model):
    """A role that could read an object, and by which path."""

    role: str
    object: str
    path: AccessPath
    via: str | None = Field(default=None, description="The role or grant the path goes through.")
    login: bool = False
    privileges: list[str] = Field(default_factory=list, description="What the path allows (SELECT, ...).")

    def describe(self) -> str:
        """``role:object:path(via x)``, the form residual lists use."""
        return f"{self.role}:{self.object}:{self.path.value}" + (f"(via {self.via})" if self.via else "")


class ObjectRecord(Model):
    """A dataset object as the catalog described it."""

    name: str = Field(description="schema.name (functions: schema.name(argument types))")
    kind: str = Field(
        description="table, partitioned_table, view, materialized_view, foreign_table, sequence, function"
    )
    owner: str
    rls: bool = False
    depends_on: list[str] = Field(
        default_factory=list, description="Dataset tables a view or function reads."
    )


class RoleRecord(Model):
    """A role that appears in the scope."""

    name: str
    login: bool = False
    superuser: bool = False
    bypassrls: bool = False


class MembershipRecord(Model):
    """``member`` is a member of ``role`` (pg_auth_members)."""

    role: str
    member: str
    grantor: str
    inherit: bool = True
    set: bool = True
    admin: bool = False


class ExposureScope(Model):
    """Everything recorded about a dataset's access before containment. Stored as evidence, not in history."""

    dataset: str
    objects: list[str]
    grants: list[GrantRecord]
    access: list[RoleAccess]
    break_glass_roles: list[str]
    schema_name: str = ""
    operator_role: str = Field(
        default="", description="The role that recorded the scope and contains the dataset."
    )
    object_details: list[ObjectRecord] = Field(default_factory=list)
    roles: list[RoleRecord] = Field(default_factory=list)
    memberships: list[MembershipRecord] = Field(default_factory=list)
    recorded_at: datetime | None = None
    server_version: str = ""


class GrantSpec(Model):
    """A grant a resume plan restores: narrow, explicit, reviewed."""

    dataset: str = Field(pattern=SLUG)
    role: str = Field(pattern=SQL_IDENT, description="A named role; PUBLIC is never allowed.")
    table: str = Field(pattern=SQL_IDENT)
    privileges: list[str] = Field(min_length=1, max_length=len(PRIVILEGES))
    columns: list[str] | None = Field(default=None, max_length=1600, description="Restrict to these columns.")

    @field_validator("privileges")
    @classmethod
    def _known(cls, privileges: list[str]) -> list[str]:
        upper = [p.upper() for p in privileges]
        for p in upper:
            if p not in PRIVILEGES:
                raise ValueError(f"unknown privilege {p!r}; expected one of {', '.join(PRIVILEGES)}")
        return sorted(set(upper))

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: list[str] | None) -> list[str] | None:
        if columns is None:
            return None
        import re

        for c in columns:
            if not re.fullmatch(SQL_IDENT, c):
                raise ValueError(f"{c!r} is not a plain lower-case column name")
        return sorted(set(columns))

    @field_validator("role")
    @classmethod
    def _not_public(cls, role: str) -> str:
        # PostgreSQL reads the role name public, even quoted, as PUBLIC: every role.
        if role == "public":
            raise ValueError("a grant to public reaches every role; name a role")
        return role

    @model_validator(mode="after")
    def _column_privileges(self) -> GrantSpec:
        if self.columns is not None:
            bad = [p for p in self.privileges if p not in COLUMN_PRIVILEGES]
            if bad:
                raise ValueError(f"{', '.join(bad)} cannot be restricted to columns")
            if not self.columns:
                raise ValueError("columns, when given, must name at least one column")
        return self


class DatasetContainment(Model):
    """Result of containing one dataset: counts and digests only."""

    dataset: str
    scope: EvidenceRef = Field(description="The recorded exposure scope (evidence).")
    grants_recorded: int
    roles_with_access: int
    revoked: int
    verified: bool
    residual: list[str] = Field(
        default_factory=list, description="role:object:path entries still able to read (capped list)."
    )
    residual_count: int = 0
    sessions_terminated: int = 0
    snapshot: EvidenceRef | None = Field(
        default=None, description="The raw catalog the revoke captured, from which the scope was derived."
    )
    access_gone_at: datetime | None = Field(
        default=None, description="When the revoke committed and the readers' sessions were ended."
    )
    access_verified_at: datetime | None = Field(
        default=None, description="When the database confirmed, for every role that had access, that it is gone."
    )


class DatasetRevoked(Model):
    """Access to one dataset cut (committed), not yet verified: counts, digests and times only."""

    dataset: str
    snapshot: EvidenceRef = Field(description="The raw catalog captured in the revoke's transaction (evidence).")
    revoked: int = Field(description="REVOKE / ALTER statements executed (0 when already closed).")
    passes: int = 1
    sessions_terminated: int = 0
    captured_at: datetime
    access_gone_at: datetime


class DatasetCheck(Model):
    """Whether a dataset is still contained (checked again before resuming)."""

    dataset: str
    contained: bool
    violations: list[str] = Field(default_factory=list)
    violation_count: int = 0
    accepted: list[str] = Field(
        default_factory=list,
        description="Residual access no REVOKE can close (superuser, owner) that the scope already recorded.",
    )


class RevokeOutcome(Model):
    """What one revoke run did."""

    dataset: str
    statements: int = Field(
        description="REVOKE / ALTER statements that were executed (0 when already contained)."
    )
    passes: int
    sessions_terminated: int = 0
    break_glass_regranted: list[str] = Field(
        default_factory=list, description="Privileges re-granted to break-glass roles that a cascade removed."
    )
    captured_at: datetime | None = Field(default=None, description="When the catalog was read, before revoking.")
    access_gone_at: datetime | None = Field(default=None, description="When the revoke had committed.")


class RestoreResult(Model):
    """Grants restored under an approved plan, verified through the database."""

    dataset: str
    granted: int
    verified: bool
    missing: list[str] = Field(default_factory=list)
    statements: int = 0


class PlanDiff(Model):
    """How a resume plan changes access compared with the exposure scope: role -> objects."""

    loses: dict[str, list[str]] = Field(default_factory=dict, description="Had access before, will not.")
    keeps: dict[str, list[str]] = Field(default_factory=dict, description="Had access before, will again.")
    gains: dict[str, list[str]] = Field(default_factory=dict, description="Did not have access, will.")


@dataclass(frozen=True)
class ReadPath:
    """A view, materialized view or routine through which the dataset's base relations can be read."""

    name: str  # schema.name (routines without argument types: a call names no types)
    kind: str  # view, matview, function
    reaches: tuple[str, ...]  # the dataset's base relations, schema.name
    dynamic: bool = False  # a routine that runs SQL built at run time: may reach more than listed
