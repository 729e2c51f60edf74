"""A pause awaiting approval under a runbook that requires signed approvals, and the keys of its people."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pausegate.approvals.statement import ApprovalStatement
from pausegate.models.digests import plan_digest
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.plan import PlanRecord, ResumePlan
from pausegate.models.runbook import Runbook
from pausegate.models.signatures import KeyRing, SignoffRound
from pausegate.models.state import PauseState
from pausegate.models.updates import ApproveInput
from pausegate.policy import review, signoff
from pausegate.policy import transitions as t
from tests.support.harness import CISO, COMMANDER, CPO, CTO, example_runbook
from tests.support.signing import ORIGIN, RP_ID, SoftPasskey, SshKey

STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLAN = ResumePlan(summary="analysts only, no typed content")


def signed_runbook(program: str = "telemetry-signed") -> Runbook:
    runbook = example_runbook(program)
    policy = runbook.resume_policy.model_copy(update={"signatures": "required"})
    return runbook.model_copy(update={"resume_policy": policy})


@dataclass
class SignedPause:
    """A pause awaiting approval; cleo and tom hold SSH keys, pat a passkey and an SSH key, carol (the
    commander) an SSH key."""

    runbook: Runbook
    state: PauseState
    cleo: SshKey
    pat: SoftPasskey
    pat_ssh: SshKey
    carol: SshKey
    tom: SshKey

    def statement(self, actor: Actor, role: str, comment: str = "",
                  state: PauseState | None = None) -> ApprovalStatement:
        return signoff.statement_to_sign(state or self.state, approver_id=actor.id, role=role, comment=comment,
                                         at=STARTED + timedelta(hours=2))

    def request(self, actor: Actor, role: str, envelope: object = None, **extra: object) -> ApproveInput:
        state = self.state
        return ApproveInput.model_validate({"actor": actor, "role": role, "digest": state.approval_digest,
                                            "envelope": envelope, **extra})

    def validate(self, request: ApproveInput, state: PauseState | None = None) -> None:
        """What the workflow's validator runs."""
        s = state or self.state
        commander = COMMANDER
        review.check_approval(self.runbook, s.phase, commander, s.plan, s.approval_digest, s.approvals, request)
        signoff.check(self.runbook, s, request)

    def approve(self, request: ApproveInput) -> None:
        self.validate(request)
        signoff.approve(self.state, self.runbook, request, STARTED + timedelta(hours=3), t.approve_plan)


def awaiting_approval(runbook: Runbook, keys: KeyRing, *, pause_suffix: str = "a1b2c3d4",
                      nonce: Callable[[], str] = lambda: "n0nce-" + "1" * 26) -> PauseState:
    request = PauseRequest(program=runbook.program.id, reason="telemetry readable company-wide", commander=COMMANDER,
                           runbook=runbook)
    state = t.new_pause(f"pause/{pause_suffix}", request, STARTED, pause_suffix)
    state.phase = Phase.AWAITING_APPROVAL
    state.plan = PlanRecord(plan=PLAN, plan_digest=plan_digest(PLAN), proposed_by="sam",
                            proposed_at=STARTED + timedelta(hours=1))
    state.signoff = SignoffRound(ring=keys)
    signoff.advance(state, nonce)
    return state


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ssh-keys")


@pytest.fixture(scope="session")
def ssh_keys(key_dir: Path) -> dict[str, SshKey]:
    return {name: SshKey.make(key_dir, name) for name in ("cleo", "pat", "carol", "tom")}


@pytest.fixture
def pause(ssh_keys: dict[str, SshKey]) -> SignedPause:
    pat = SoftPasskey()
    keys = KeyRing(pinned_at=STARTED, rp_id=RP_ID, origins=[ORIGIN], keys=[
        ssh_keys["cleo"].enrolled(CISO.id), pat.enrolled(CPO.id), ssh_keys["pat"].enrolled(CPO.id),
        ssh_keys["carol"].enrolled(COMMANDER.id),
    ])
    runbook = signed_runbook()
    return SignedPause(runbook, awaiting_approval(runbook, keys), ssh_keys["cleo"], pat, ssh_keys["pat"],
                       ssh_keys["carol"], ssh_keys["tom"])


__all__ = ["CISO", "COMMANDER", "CPO", "CTO", "SignedPause", "awaiting_approval", "signed_runbook"]
