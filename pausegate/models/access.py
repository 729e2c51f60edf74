"""Dataset access as data: the exposure scope, grants to restore, containment results."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from pausegate.models.base import Model
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import SQL_IDENT

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


class AccessPath(StrEnum):
    """How a role reaches a dataset object."""

    DIRECT = "direct"  # a grant to the role itself
    PUBLIC = "public"  # a grant to PUBLIC, i.e. every role
    MEMBERSHIP = "membership"  # inherited through membership of a role that has a grant
    OWNER = "owner"  # owns the object (or is a member of the owning role)
    SUPERUSER = "superuser"  # bypasses every check; cannot be revoked
    PREDEFINED = "predefined"  # pg_read_all_data / pg_write_all_data
    DEFAULT_PRIVILEGES = "default_privileges"  # would be granted on future tables


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


class ExposureScope(Model):
    """Everything recorded about a dataset's access before containment. Stored as evidence, not in history."""

    dataset: str
    objects: list[str]
    grants: list[GrantRecord]
    access: list[RoleAccess]
    break_glass_roles: list[str]


class GrantSpec(Model):
    """A grant a resume plan restores: narrow, explicit, reviewed."""

    dataset: str
    role: str = Field(pattern=SQL_IDENT, description="A named role; PUBLIC is never allowed.")
    table: str = Field(pattern=SQL_IDENT)
    privileges: list[str] = Field(min_length=1)
    columns: list[str] | None = Field(default=None, description="Restrict to these columns.")

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
            if not re.match(SQL_IDENT, c):
                raise ValueError(f"{c!r} is not a plain lower-case column name")
        return sorted(set(columns))


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


class DatasetCheck(Model):
    """Whether a dataset is still contained (checked again before resuming)."""

    dataset: str
    contained: bool
    violations: list[str] = Field(default_factory=list)
    violation_count: int = 0


class RestoreResult(Model):
    """Grants restored under an approved plan, verified through the database."""

    dataset: str
    granted: int
    verified: bool
    missing: list[str] = Field(default_factory=list)
