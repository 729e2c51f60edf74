"""A pause's approvals checked from its evidence and the enrollment log alone: no server key, no network.

The report (``<pause>/report.json`` in the evidence) holds the pause's state as the workflow kept it:
each approval with the envelope its approver signed and the key that verified it, the key ring pinned
when the pause started, the round's nonce. The enrollment log (``keys-log.jsonl``, a copy is enough)
holds how every key was enrolled. Each statement is verified again by the rule the workflow ran
(``pausegate.approvals.verify``); the ring must be what the log said when the pause pinned it (the
line it names, every key as the log's lines up to it enrolled it); every failure is named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pausegate.approvals.enrollment import KeyChange, line_digest, replay
from pausegate.approvals.statement import Expected
from pausegate.approvals.verify import verify
from pausegate.errors import ActionRefused
from pausegate.models.digests import checklist_digest
from pausegate.models.signatures import EnrolledKey, KeyRing
from pausegate.models.state import PauseState

MAX_LOG_LINES = 1_000_000
GENESIS = "0" * 64
"""What the log's first line names, and where a ring pinned before any line points."""


@dataclass
class Findings:
    """Who approved what (one sentence each), and every problem found."""

    approvals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    signed_holders: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_log(lines: Iterable[bytes], where: str, findings: Findings) -> list[tuple[KeyChange, str]]:
    """The enrollment log's changes with their digests, following the chain (a line that does not name
    the one before it is a problem)."""
    changes: list[tuple[KeyChange, str]] = []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        if number > MAX_LOG_LINES:
            findings.problems.append(f"{where}: more than {MAX_LOG_LINES} lines; not read further")
            break
        digest = line_digest(line)
        try:
            change = KeyChange.model_validate(json.loads(line))
        except (ValueError, ValidationError) as exc:
            findings.problems.append(f"{where}:{number}: not a key change: {str(exc)[:160]}")
        else:
            if change.prev != prev:
                findings.problems.append(f"{where}:{number}: does not follow line {number - 1} (removed, edited "
                                         "or reordered)")
            changes.append((change, digest))
        prev = digest
    return changes


def _same(key: EnrolledKey, logged: EnrolledKey | None) -> bool:
    return logged is not None and key.model_dump() == logged.model_dump()


def check_ring(ring: KeyRing, changes: list[tuple[KeyChange, str]], where: str, findings: Findings) -> None:
    """The ring must be what the log's first ``ring.log_lines`` lines enrolled."""
    if len(changes) < ring.log_lines:
        findings.problems.append(f"{where}: has {len(changes)} lines, the pause pinned its keys at line "
                                 f"{ring.log_lines} (lines cut)")
        return
    pinned = changes[:ring.log_lines]
    last = pinned[-1][1] if pinned else GENESIS
    if last != ring.log_last:
        findings.problems.append(f"{where}:{ring.log_lines}: not the line the pause pinned its keys at (rewritten)")
    logged = replay(pinned)
    for key in ring.keys:
        if not _same(key, logged.get(key.key_id)):
            findings.problems.append(f"key {key.key_id[:12]}… of {key.holder}: the pause pinned it as the log up to "
                                     f"line {ring.log_lines} does not enroll it")


def verify_report(report: Any, log_lines: Iterable[bytes], *, log_where: str = "keys-log.jsonl") -> Findings:
    """Every approval of the pause whose final report is ``report``, checked against the enrollment log."""
    findings = Findings()
    try:
        state = PauseState.model_validate(report["status"])
    except (KeyError, TypeError, ValidationError) as exc:
        findings.problems.append(f"report: no pause state in it: {str(exc)[:200]}")
        return findings
    signoff = state.signoff
    if signoff is None or signoff.ring is None or signoff.nonce is None or state.plan is None:
        findings.problems.append("report: this pause did not run signed approvals (no key ring, round or plan)")
        return findings
    changes = read_log(log_lines, log_where, findings)
    check_ring(signoff.ring, changes, log_where, findings)
    everyone = replay(changes)
    for approval in state.approvals:
        who = f"{approval.actor_id} (as {approval.role})"
        if approval.digest != state.approval_digest:
            findings.problems.append(f"approval by {who}: of digest {approval.digest[:12]}…, not the plan and review "
                                     "the pause ended with")
            continue
        if approval.signature is None:
            findings.approvals.append(f"{who} approved with a token only (no signature)")
            continue
        late = approval.signature.key if signoff.ring.key(approval.signature.key.key_id) is None else None
        if late is not None and not _same(late, everyone.get(late.key_id)):
            findings.problems.append(f"approval by {who}: its key {late.key_id[:12]}… is not enrolled so in the log")
            continue
        expected = Expected(pause_id=state.pause_id, pause_key=state.evidence_key, incident_id=state.incident_id,
                            plan_sha256=state.plan.plan_digest, checklist_sha256=checklist_digest(state.checklist),
                            nonce=signoff.nonce, approver_id=approval.actor_id, role=approval.role,
                            comment=approval.comment)
        try:
            verified = verify(approval.signature.envelope, signoff.ring, expected, late=late,
                              commander=state.commander)
        except ActionRefused as exc:
            findings.problems.append(f"approval by {who}: {exc.reason}")
            continue
        key = verified.key
        findings.signed_holders.add(key.holder)
        confirmed = ", ".join(key.confirmed_by) or "nobody"
        findings.approvals.append(
            f"{who} approved plan {state.plan.plan_digest[:12]}… at {verified.statement.predicate.at.isoformat()} "
            f"with {key.kind} key {key.key_id[:12]}… enrolled {key.enrolled_at.isoformat()} by {key.enrolled_by}, "
            f"confirmed by {confirmed}")
    if len(findings.signed_holders) < state.quorum:
        findings.problems.append(f"{len(findings.signed_holders)} distinct key holders signed; the quorum is "
                                 f"{state.quorum}")
    return findings
