"""The evidence disk full while containment seals: access is revoked all the same (the urgent steps do not
wait on the proving ones), sealing is retried with a reason that says so (the store has no room for
this key), nothing half-written is referenced, and sealing completes once there is space again.

How the disk fills: the worker that seals runs in a process of its own whose RLIMIT_FSIZE soft limit is
a few hundred bytes (``tests.faults.worker_proc --file-size-limit``), so every evidence file it writes past
that fails with EFBIG ("File too large"), the way a full disk fails a write with ENOSPC; nothing needs
root, a loop device or a store wrapper. Space returns by raising the running worker's limit (``prlimit``).
The urgent worker (halts, revokes) runs in the test's process, without the limit: it stores the catalog
it revokes against, which is small and written before the sealing worker's first file.
"""

from __future__ import annotations

import resource
from pathlib import Path

from pausegate.evidence.verify import verify_bundle
from pausegate.models.phase import Phase
from pausegate.temporal.worker import build_urgent_worker
from tests.faults.support import WorkerProcess, fleet_effects
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.workflows.test_lifecycle import can_read

LIMIT = 256  # bytes a file may grow to in the sealing worker


async def test_a_full_evidence_disk_holds_sealing_not_the_revoke_and_sealing_resumes_with_space(
    make_harness: HarnessFactory, temporal_address: str, tmp_path: Path
) -> None:
    async with make_harness(run_worker=False, agents=10) as h:
        worker = WorkerProcess(h, temporal_address, tmp_path / "worker")
        async with build_urgent_worker(h.client, h.connectors):
            await worker.start(regular_only=True, file_size_limit=LIMIT)
            try:
                await h.pause()
                full = await h.wait_for(
                    lambda s: s.containment.access_gone_at is not None
                    and any("evidence store has no room" in e for e in s.containment.errors),
                    what="the revoke done and sealing failing for space")
                assert full.phase == Phase.CONTAINING and full.containment.evidence_pending
                assert fleet_effects(h).collecting == 0, "the agents kept collecting while the disk was full"
                assert not can_read(h.dsn_as("employee_0001"), "keystrokes"), "access stayed open"
                reasons = [e for e in full.containment.errors if "no room" in e]
                assert all("File too large" in r and "retried" in r for r in reasons), reasons

                worker.set_file_size_limit(resource.RLIM_INFINITY)
                status = await h.wait_for_state(Phase.UNDER_REVIEW, timeout=90)
            finally:
                worker.stop()
        assert not status.containment.evidence_pending and status.containment.evidence
        store = h.connectors.evidence_store
        for sealed in status.containment.evidence:
            report = verify_bundle(store.bundle_path(sealed.bundle.key), store.public_key_path)  # type: ignore[attr-defined]
            assert report.ok, report
        record_result("evidence disk full", f"sealing worker's files limited to {LIMIT} bytes (RLIMIT_FSIZE)",
                      injected=len(reasons),
                      outcome="revoke and halt done meanwhile; sealing retried with the reason shown; sealed and "
                              "verified once space returned", failures_shown=len(reasons))
