"""A pause the watch pulls after drift counts signed approvals against the key ring of the pause it
watched: the program that must be signed off to resume can be signed off again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.auth.keys import KeyEnrollment, ssh_key
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.runbook import WatchSpec
from pausegate.models.updates import ApproveInput, ProposePlanInput
from pausegate.policy import signoff
from pausegate.reference.fleet.settings import FaultSettings
from pausegate.temporal.pauses import start_pause
from tests.approvals.conftest import signed_runbook
from tests.support.harness import CISO, COMMANDER, CPO, HarnessFactory
from tests.support.signing import ORIGIN, RP_ID, SshKey
from tests.workflows.test_lifecycle import complete_review
from tests.workflows.test_resume_conditions import AGENTS, CONDITIONED_PLAN
from workflows.watch import watch_actor

ADA = Actor(id="ada", roles=["admin"])


@pytest.mark.slow
async def test_the_watchs_pause_pins_the_key_ring_of_the_pause_it_watched(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    async with make_harness(agents=AGENTS) as h:
        h.runbook = signed_runbook(h.program).model_copy(
            update={"watch": WatchSpec(period=timedelta(minutes=10), interval=timedelta(seconds=1))})
        keys = {who.id: SshKey.make(tmp_path / "ssh", who.id) for who in (CISO, CPO)}
        enrollment = KeyEnrollment.file(tmp_path / "keys-log.jsonl", Ed25519PrivateKey.generate(),
                                        lambda: datetime.now(UTC))
        for who in (CISO, CPO):
            key_id, blob = ssh_key(keys[who.id].path.with_name(f"{who.id}.pub").read_text())
            enrollment.enroll(who, "ssh", key_id, blob)
            enrollment.confirm(ADA, key_id)
        ring = enrollment.ring(datetime.now(UTC), rp_id=RP_ID, origins=[ORIGIN])
        request = PauseRequest(program=h.program, reason="telemetry readable company-wide", commander=COMMANDER,
                               runbook=h.runbook)
        await start_pause(h.client, request, task_queue=h.task_queue, tuning=h.tuning, keys=ring)
        await h.wait_for_state(Phase.UNDER_REVIEW)
        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=CONDITIONED_PLAN))
        status = await h.wait_for(lambda s: s.signoff is not None and s.signoff.nonce is not None, what="a nonce")
        for actor, role in ((CISO, "ciso"), (CPO, "cpo")):
            statement = signoff.statement_to_sign(status, approver_id=actor.id, role=role, comment="",
                                                  at=datetime.now(UTC))
            await h.act(ApproveInput(actor=actor, role=role, digest=status.approval_digest or "",
                                     envelope=keys[actor.id].sign(statement)))
        await h.wait_for_state(Phase.RESUMED)

        # Typed content captured again: the watch pulls the switch; its pause pins the same keys.
        h.fleet.app.state.faults.update(FaultSettings(latency_ms=1, jitter_ms=1, profile_ignored_by=["agent-00001"]))
        again = await h.wait_for(lambda s: s.commander == watch_actor(h.program) and s.phase != Phase.RESUMED,
                                 what="the watch's pause", timeout=90)
        assert again.signoff is not None and again.signoff.ring == ring
