"""What verifying a dataset asks of its recorded exposure scope, without the scope's models.

A company's scope holds about a million access paths; verification needs only which roles reached
which objects (and which of them can log in), and who held the schema's own privileges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pausegate.models.access import ExposureScope


@dataclass
class ScopeFacts:
    """What verification asks about a recorded scope."""

    pairs: set[tuple[str, str]] = field(default_factory=set)  # (role, object) with any recorded path
    login_pairs: set[tuple[str, str]] = field(default_factory=set)  # the pairs whose role can log in
    schema_grantees: set[str] = field(default_factory=set)  # grantees of the schema's own privileges
    grants: int = 0  # grants recorded

    @property
    def roles_with_access(self) -> int:
        return len({r for r, _ in self.pairs})

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
        self.pairs.add((role, obj))
        if login:
            self.login_pairs.add((role, obj))
