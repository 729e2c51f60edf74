"""What verifying a dataset asks of its recorded exposure scope, without the scope's models.

A company's scope holds about a million access paths; verification needs only which roles reached
which objects (and which of them can log in), and who held the schema's own privileges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pausegate.models.access import ExposureScope


@dataclass
class ScopeFacts:
    """What verification asks about a recorded scope, by object (a million (role, object) tuples
    would cost more to build and filter than the database takes to answer)."""

    roles: dict[str, set[str]] = field(default_factory=dict)  # object -> roles with any recorded path
    logins: dict[str, set[str]] = field(default_factory=dict)  # object -> those of them that can log in
    schema_grantees: set[str] = field(default_factory=set)  # grantees of the schema's own privileges
    grants: int = 0  # grants recorded

    @property
    def roles_with_access(self) -> int:
        return len(set().union(*self.roles.values()))

    @classmethod
    def of(cls, scope: ExposureScope) -> ScopeFacts:
        facts = cls(
            schema_grantees={g.grantee for g in scope.grants if g.object_kind == "schema"}, grants=len(scope.grants)
        )
        for a in scope.access:
            facts.add(a.role, a.object, a.login)
        return facts

    @classmethod
    def of_document(cls, document: Mapping[str, Any]) -> ScopeFacts:
        """From a stored scope document (read from evidence, signed for its key), without the models."""
        grants = document["grants"]
        facts = cls(schema_grantees={g["grantee"] for g in grants if g["object_kind"] == "schema"}, grants=len(grants))
        for a in document["access"]:
            facts.add(a["role"], a["object"], a["login"])
        return facts

    def add(self, role: str, obj: str, login: bool) -> None:
        roles = self.roles.get(obj)
        if roles is None:
            roles = self.roles[obj] = set()
            self.logins[obj] = set()
        roles.add(role)
        if login:
            self.logins[obj].add(role)


@dataclass
class DerivedScope:
    """A scope derived from a captured catalog: what verification needs, and the scope's document as
    canonical JSON (of ``ExposureScope.model_dump(mode="json")``), each built on demand (the document
    takes seconds for a company, so it is started first and built while verification runs)."""

    facts: Callable[[], ScopeFacts]
    document: Callable[[], bytes]
