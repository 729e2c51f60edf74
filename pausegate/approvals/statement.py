"""The in-toto Statement of one approval: what an approver signs, and how it is held against the pause.

The subject is the plan's digest; the predicate names the pause (its id, evidence key and incident
id), the checklist digest the plan was approved against, the decision with its comment, the approver,
the time and the nonce the workflow issued for this sign-off round. A statement that differs from what
the pause expects in any of these is refused, each difference named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationError

from pausegate.canonical import canonical_json
from pausegate.models.base import Model
from pausegate.models.evidence import SHA256_HEX
from pausegate.models.limits import MAX_NOTE

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://pausegate.dev/approval/v1"
SUBJECT_NAME = "pausegate-resume-plan"

Decision = Literal["approve", "reject"]


class StatementError(ValueError):
    """A payload that is not an approval statement."""


class Digest(Model):
    sha256: str = Field(pattern=SHA256_HEX)


class Subject(Model):
    name: str = Field(max_length=100)
    digest: Digest


class PauseNamed(Model):
    id: str = Field(max_length=300)
    key: str = Field(max_length=300, description="The pause's evidence key.")
    incident: str = Field(max_length=100)


class Approver(Model):
    id: str = Field(max_length=512)
    role: str = Field(max_length=100)


class ApprovalPredicate(Model):
    pause: PauseNamed
    checklist_sha256: str = Field(pattern=SHA256_HEX)
    decision: Decision
    comment: str = Field(default="", max_length=MAX_NOTE)
    approver: Approver
    at: datetime
    nonce: str = Field(min_length=8, max_length=100)


class ApprovalStatement(Model):
    """An in-toto Statement v1 whose predicate is an approval."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1, max_length=1)
    predicateType: Literal["https://pausegate.dev/approval/v1"]
    predicate: ApprovalPredicate

    model_config = Model.model_config | {"populate_by_name": True}

    @property
    def plan_sha256(self) -> str:
        return self.subject[0].digest.sha256

    def body(self) -> bytes:
        """The payload: canonical JSON, so one statement has one byte string."""
        return canonical_json(self.model_dump(mode="json", by_alias=True))


@dataclass(frozen=True)
class Expected:
    """What the pause expects an approval to say, now."""

    pause_id: str
    pause_key: str
    incident_id: str
    plan_sha256: str
    checklist_sha256: str
    nonce: str
    approver_id: str
    role: str
    comment: str
    decision: Decision = "approve"


def build(expected: Expected, at: datetime) -> ApprovalStatement:
    """The statement an approver signs for ``expected``."""
    return ApprovalStatement.model_validate({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": SUBJECT_NAME, "digest": {"sha256": expected.plan_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "pause": {"id": expected.pause_id, "key": expected.pause_key, "incident": expected.incident_id},
            "checklist_sha256": expected.checklist_sha256, "decision": expected.decision,
            "comment": expected.comment, "approver": {"id": expected.approver_id, "role": expected.role},
            "at": at, "nonce": expected.nonce,
        },
    })


def parse(body: bytes) -> ApprovalStatement:
    """The statement in ``body`` (already bounded by the envelope's limit)."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise StatementError("the payload is not JSON") from None
    try:
        return ApprovalStatement.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StatementError(f"the payload is not an approval statement: {where}: {first['msg']}"[:300]) from None


def differences(statement: ApprovalStatement, expected: Expected) -> list[str]:
    """Every way ``statement`` says something other than what the pause expects."""
    p = statement.predicate
    found: list[str] = []
    if statement.plan_sha256 != expected.plan_sha256:
        found.append(f"signed plan {statement.plan_sha256[:12]}… is not the current plan {expected.plan_sha256[:12]}…")
    if p.pause.id != expected.pause_id or p.pause.key != expected.pause_key:
        found.append(f"signed for pause {p.pause.key[:80]!r}, not this one ({expected.pause_key})")
    if p.pause.incident != expected.incident_id:
        found.append(f"signed for incident {p.pause.incident[:40]!r}, not {expected.incident_id}")
    if p.checklist_sha256 != expected.checklist_sha256:
        found.append(f"signed against checklist {p.checklist_sha256[:12]}…, not the current review "
                     f"{expected.checklist_sha256[:12]}…")
    if p.nonce != expected.nonce:
        found.append("signed for another sign-off round (its nonce is not this round's)")
    if p.decision != expected.decision:
        found.append(f"signed decision {p.decision!r}, not {expected.decision!r}")
    if p.approver.id != expected.approver_id:
        found.append(f"signed by approver {p.approver.id[:80]!r}, sent by {expected.approver_id[:80]!r}")
    if p.approver.role != expected.role:
        found.append(f"signed as role {p.approver.role[:40]!r}, sent as {expected.role!r}")
    if p.comment != expected.comment:
        found.append("the comment sent is not the comment signed")
    return found
