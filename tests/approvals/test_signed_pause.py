"""A pause whose runbook requires signed approvals, on the real stack: keys enrolled in the enrollment log
and pinned when the pause starts, a token refused, two leaders' SSH signatures resume the program; then
its approvals verified offline from a copy of the evidence, in a process that cannot open sockets."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.auth.keys import KeyEnrollment, ssh_key
from pausegate.evidence.report import render_markdown
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.steps import ReportInput
from pausegate.models.updates import ApproveInput, ProposePlanInput
from pausegate.policy import signoff
from pausegate.temporal.pauses import start_pause
from tests.approvals.conftest import signed_runbook
from tests.support.fault_report import record_result
from tests.support.harness import CISO, COMMANDER, CPO, Harness
from tests.support.histories import replay_and_maybe_record
from tests.support.signing import ORIGIN, RP_ID, SshKey
from tests.workflows.test_lifecycle import NARROWED_PLAN, complete_review
from tests.workflows.test_refusals import refused

ADA = Actor(id="ada", roles=["admin"])
ROOT = Path(__file__).resolve().parents[2]

NO_SOCKETS = """
import _socket, socket, sys
class NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        raise OSError("this process may not open sockets")
def refused(*args, **kwargs):
    raise OSError("this process may not open sockets")
socket.socket = _socket.socket = NoSocket
socket.create_connection = socket.socketpair = socket.fromfd = refused
from pausegate.cli.main import app
sys.argv = ["pausegate", *sys.argv[1:]]
app()
"""


def verify_offline(report: Path, log: Path) -> tuple[int, dict[str, object]]:
    """``pausegate evidence verify-approvals`` in a fresh process whose sockets all fail."""
    done = subprocess.run([sys.executable, "-c", NO_SOCKETS, "evidence", "verify-approvals", str(report),
                           "--enrollment", str(log), "--json"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def sockets_refused() -> bool:
    """Whether the process ``verify_offline`` runs in fails to open a socket."""
    opened = subprocess.run([sys.executable, "-c", NO_SOCKETS.split("from pausegate")[0] +
                             "import socket\nsocket.create_connection(('127.0.0.1', 7233))"],
                            capture_output=True, text=True, timeout=60, check=False)
    return opened.returncode != 0 and "may not open sockets" in opened.stderr


def enrolled(tmp_path: Path, keys: dict[str, SshKey], holders: dict[str, Actor]) -> KeyEnrollment:
    enrollment = KeyEnrollment.file(tmp_path / "api" / "keys-log.jsonl", Ed25519PrivateKey.generate(),
                                    lambda: datetime.now(UTC))
    for name, key in keys.items():
        key_id, blob = ssh_key(key.path.with_name(key.path.name + ".pub").read_text())
        enrollment.enroll(holders[name], "ssh", key_id, blob)
        enrollment.confirm(ADA, key_id)
    return enrollment


async def test_two_leaders_sign_with_ssh_keys_the_program_resumes_and_anyone_can_check_it_offline(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    keys = {name: SshKey.make(tmp_path / "ssh", name) for name in ("cleo", "pat")}
    enrollment = enrolled(tmp_path, keys, {"cleo": CISO, "pat": CPO})
    runbook = signed_runbook(h.program)
    request = PauseRequest(program=h.program, reason="telemetry readable company-wide", commander=COMMANDER,
                           runbook=runbook)
    ring = enrollment.ring(datetime.now(UTC), rp_id=RP_ID, origins=[ORIGIN])
    handle, started = await start_pause(h.client, request, task_queue=h.task_queue, tuning=h.tuning, keys=ring)
    assert started and len(ring.keys) == 2
    await h.wait_for_state(Phase.UNDER_REVIEW)
    await complete_review(h)
    await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
    status = await h.wait_for(lambda s: s.signoff is not None and s.signoff.nonce is not None, what="a nonce")
    assert status.approval_digest is not None
    # Chat is told where to sign off: the console's sign-off page (nothing said in chat approves).
    await h.eventually(lambda: any(f"/console/pauses/{h.program}/plan" in m.text
                                   for m in h.chat.sink.received("security")), what="a sign-off link in chat")

    # A token alone is refused, and so is a statement signed for another round.
    await refused(h, ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest), "signature_required")
    stale = status.model_copy(update={"signoff": status.signoff.model_copy(update={"nonce": "0" * 32})})  # type: ignore[union-attr]
    old_round = keys["cleo"].sign(signoff.statement_to_sign(stale, approver_id=CISO.id, role="ciso", comment="",
                                                            at=datetime.now(UTC)))
    await refused(h, ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest, envelope=old_round),
                  "bad_statement")

    for actor, role in ((CISO, "ciso"), (CPO, "cpo")):
        statement = signoff.statement_to_sign(status, approver_id=actor.id, role=role, comment="narrowed; agreed",
                                              at=datetime.now(UTC))
        await h.act(ApproveInput(actor=actor, role=role, digest=status.approval_digest, comment="narrowed; agreed",
                                 envelope=keys[actor.id].sign(statement)))
    final: PauseState = await handle.result()
    assert final.phase == Phase.RESUMED and final.report is not None
    assert [(a.actor_id, a.signature.key.kind) for a in final.approvals if a.signature] == [("cleo", "ssh"),
                                                                                           ("pat", "ssh")]
    await replay_and_maybe_record(handle, "signed-approvals")

    # The evidence copied elsewhere, with the enrollment log: checked with no server key and no network.
    copy = tmp_path / "copied"
    shutil.copytree(h.settings.evidence.directory, copy / "evidence")
    shutil.copy(tmp_path / "api" / "keys-log.jsonl", copy / "keys-log.jsonl")
    report = copy / "evidence" / f"{final.report.key}.json"
    # The report names the key of each approval and when it was enrolled.
    markdown = render_markdown(ReportInput.model_validate(json.loads(report.read_text())))
    cleo_line = next(line for line in markdown.splitlines() if line.startswith("- cleo (ciso) approved"))
    assert f"signed with SSH key {keys['cleo'].key_id[:16]} enrolled" in cleo_line
    code, out = verify_offline(report, copy / "keys-log.jsonl")
    assert code == 0, out
    assert sockets_refused()
    assert out["signed_by"] == ["cleo", "pat"]
    assert any("cleo (as ciso) approved plan" in line and "ssh key" in line for line in out["approvals"])  # type: ignore[attr-defined]

    # Tampered: the statement's comment edited in the report.
    document = json.loads(report.read_text())
    approval = document["status"]["approvals"][0]
    body = json.loads(base64.b64decode(approval["signature"]["envelope"]["payload"]))
    body["predicate"]["comment"] = "edited"
    approval["signature"]["envelope"]["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    approval["comment"] = "edited"
    tampered = copy / "tampered-report.json"
    tampered.write_text(json.dumps(document))
    code, out = verify_offline(tampered, copy / "keys-log.jsonl")
    assert code == 1 and any("approval by cleo" in p and "does not verify" in p for p in out["problems"])  # type: ignore[attr-defined]

    # Tampered: the enrollment log rewritten to enroll cleo's key to someone else.
    lines = (copy / "keys-log.jsonl").read_bytes().splitlines()
    first = json.loads(lines[0])
    first["holder"] = "mallory"
    forged_log = copy / "forged-keys-log.jsonl"
    forged_log.write_bytes(b"\n".join([json.dumps(first).encode(), *lines[1:]]) + b"\n")
    code, out = verify_offline(report, forged_log)
    assert code == 1
    problems = " ".join(out["problems"])  # type: ignore[arg-type]
    assert "does not follow line 1" in problems and "does not enroll it" in problems

    # Tampered: the log cut back before the keys were confirmed.
    cut = copy / "cut-keys-log.jsonl"
    cut.write_bytes(b"\n".join(lines[:2]) + b"\n")
    code, out = verify_offline(report, cut)
    assert code == 1 and any("lines cut" in p for p in out["problems"])  # type: ignore[attr-defined]
    for fault in ("a signed statement's comment edited in a copy of the evidence",
                  "the enrollment log rewritten to enroll a leader's key to someone else",
                  "the enrollment log cut back before the keys were confirmed"):
        record_result(fault, "offline verification, no sockets, no server key", injected=1,
                      outcome="verify-approvals exits 1 naming the failure")

