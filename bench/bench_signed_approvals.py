"""What a signed approval costs the workflow: one verification as the update validator runs it
(``pausegate.policy.signoff.check``: statement parsed and held against the pause, key ring looked up,
signature verified), for an SSH Ed25519 key (``ssh-keygen -Y sign``) and a passkey (ECDSA P-256
assertion), and the size of the envelope each approval adds to the pause's history.

Usage: PYTHONPATH=. python bench/bench_signed_approvals.py [--runs 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pausegate.models.signatures import KeyRing
from pausegate.models.updates import ApproveInput
from pausegate.policy import signoff
from tests.approvals.conftest import STARTED, awaiting_approval, signed_runbook
from tests.support.harness import CISO, CPO
from tests.support.signing import ORIGIN, RP_ID, SoftPasskey, SshKey


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args(argv)
    ssh, passkey = SshKey.make(Path(tempfile.mkdtemp(prefix="bench-keys-")), "cleo"), SoftPasskey()
    ring = KeyRing(pinned_at=STARTED, rp_id=RP_ID, origins=[ORIGIN],
                   keys=[ssh.enrolled(CISO.id), passkey.enrolled(CPO.id)])
    runbook = signed_runbook()
    state = awaiting_approval(runbook, ring)
    for actor, role, key, name in ((CISO, "ciso", ssh, "ssh ed25519"), (CPO, "cpo", passkey, "passkey p-256")):
        statement = signoff.statement_to_sign(state, approver_id=actor.id, role=role, comment="ok", at=STARTED)
        envelope = key.sign(statement)
        request = ApproveInput(actor=actor, role=role, digest=state.approval_digest, comment="ok", envelope=envelope)
        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            signoff.check(runbook, state, request)
            times.append(time.perf_counter() - began)
        times.sort()
        print(f"{name}: verify median {statistics.median(times) * 1e3:.3f} ms, "
              f"p95 {times[int(len(times) * 0.95) - 1] * 1e3:.3f} ms over {args.runs}; "
              f"envelope {len(envelope.model_dump_json())} bytes in history")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
