"""People and the request: who acts (a verified actor, or the workflow itself) and what the
commander asked for when pulling the kill switch."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from pausegate.models.base import Model
from pausegate.models.limits import MAX_NOTE
from pausegate.models.runbook import Runbook

SYSTEM_ACTOR = "pausegate"
"""The actor of every step the workflow takes by itself (timeline entries, transitions)."""


class Severity(StrEnum):
    """How bad the incident is (informs notifications; not policy)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Actor(Model):
    """A verified person and the roles they act with. Set by the API, never by a request body.

    ``id`` names the identity in its namespace: ``local:<name>`` for a local user, ``oidc:<issuer>#<sub>``
    for an OIDC subject, so a local user can never hold an OIDC subject's id or the reverse, and every
    rule that compares people (separation of duties, one approval each) compares these ids.

    ``roles`` hold in every program; ``program_roles`` only in the program they are listed under. The
    API resolves them for the program a request acts on (``for_program``) before any rule runs, so the
    actor an update carries has the roles effective for that program in ``roles`` and nothing else.
    """

    id: str = Field(min_length=1, max_length=512)
    roles: list[str] = Field(default_factory=list)
    program_roles: dict[str, list[str]] = Field(
        default_factory=dict, description="Roles held for one program only, by program id (not yet resolved)."
    )
    email: str | None = Field(
        default=None,
        max_length=320,
        description="The identity provider's verified email (OIDC email_verified), lower-cased: two identities "
        "with the same one are one person to the quorum.",
    )

    def has_any(self, roles: list[str]) -> bool:
        """Whether the actor holds at least one of ``roles``."""
        return any(r in self.roles for r in roles)

    def for_program(self, program: str) -> Actor:
        """This actor with the roles effective for ``program``: the global roles and the ones held for
        ``program``; roles held for other programs are dropped (they count nowhere else, and the pause
        of one program has no business knowing who holds what in another). Resolving twice changes nothing."""
        if not self.program_roles:
            return self
        roles = sorted({*self.roles, *self.program_roles.get(program, [])})
        return self.model_copy(update={"roles": roles, "program_roles": {}})

    def same_person(self, other_id: str, other_email: str | None) -> bool:
        """Whether the identity ``other_id`` (with its verified email, if any) is this actor: the same
        id, or the same verified email."""
        return other_id == self.id or (self.email is not None and other_email == self.email)


class PauseRequest(Model):
    """What the commander asked for when pulling the kill switch."""

    program: str
    reason: str = Field(min_length=1, max_length=MAX_NOTE)
    severity: Severity = Severity.HIGH
    commander: Actor
    runbook: Runbook

    @model_validator(mode="after")
    def _program_matches(self) -> PauseRequest:
        if self.program != self.runbook.program.id:
            raise ValueError(f"runbook is for program {self.runbook.program.id!r}, not {self.program!r}")
        return self
