"""Each forgery of a signed approval is refused, by the rule the workflow's update validator runs.

The pause awaits approval under a runbook that requires signatures; a refusal is an ``ActionRefused``
(the workflow turns it into a rejected update, which changes nothing).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from pausegate.approvals import dsse
from pausegate.errors import ActionRefused
from pausegate.models.digests import plan_digest
from pausegate.models.plan import PlanRecord
from pausegate.models.signatures import DsseEnvelope
from pausegate.policy import signoff
from tests.approvals.conftest import CISO, COMMANDER, CPO, CTO, STARTED, SignedPause, awaiting_approval
from tests.support.fault_report import record_result
from tests.support.signing import SshKey


def refused(pause: SignedPause, request: object, code: str) -> str:
    with pytest.raises(ActionRefused) as caught:
        pause.validate(request)  # type: ignore[arg-type]
    assert caught.value.code == code, caught.value.reason
    return caught.value.reason


def proven(fault: str, outcome: str) -> None:
    """The forgery's outcome, for the fault report (after the test's assertions passed)."""
    record_result(fault, "a pause awaiting signed approvals", injected=1, outcome=outcome)


def with_payload(envelope: DsseEnvelope, edit: dict[str, object]) -> DsseEnvelope:
    """The envelope with its statement edited and its signature kept."""
    statement = json.loads(base64.b64decode(envelope.payload))
    statement["predicate"].update(edit.get("predicate", {}))  # type: ignore[call-overload]
    if "plan" in edit:
        statement["subject"][0]["digest"]["sha256"] = edit["plan"]
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return envelope.model_copy(update={"payload": base64.b64encode(body).decode()})


class TestSignedApprovalsCount:
    def test_two_leaders_signing_with_an_ssh_key_and_a_passkey_reach_the_quorum(self, pause: SignedPause) -> None:
        assert not signoff.quorum_holds(pause.runbook, pause.state)
        pause.approve(pause.request(CISO, "ciso", pause.cleo.sign(pause.statement(CISO, "ciso"))))
        assert not signoff.quorum_holds(pause.runbook, pause.state)
        pause.approve(pause.request(CPO, "cpo", pause.pat.sign(pause.statement(CPO, "cpo"))))
        assert signoff.quorum_holds(pause.runbook, pause.state)
        kinds = [(a.actor_id, a.signature.key.kind) for a in pause.state.approvals if a.signature is not None]
        assert kinds == [("cleo", "ssh"), ("pat", "passkey")]

    def test_a_token_alone_does_not_count_where_the_runbook_requires_signatures(self, pause: SignedPause) -> None:
        refused(pause, pause.request(CISO, "ciso"), "signature_required")


class TestForgeries:
    def test_a_byte_of_the_plan_changed_after_signing_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.cleo.sign(pause.statement(CISO, "ciso"))
        plan = pause.state.plan
        assert plan is not None
        changed = plan.plan.model_copy(update={"summary": plan.plan.summary.replace("analysts", "analystS")})
        pause.state.plan = PlanRecord(plan=changed, plan_digest=plan_digest(changed), proposed_by=plan.proposed_by,
                                      proposed_at=plan.proposed_at)
        assert "not the current plan" in refused(pause, pause.request(CISO, "ciso", envelope), "bad_statement")
        # The statement edited to name the changed plan no longer carries the approver's signature.
        edited = with_payload(envelope, {"plan": plan_digest(changed)})
        assert "does not verify" in refused(pause, pause.request(CISO, "ciso", edited), "bad_signature")
        proven("a byte of the plan changed after signing",
               "refused: not the current plan; the edited statement's signature does not verify")

    def test_a_statement_replayed_into_another_pause_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.cleo.sign(pause.statement(CISO, "ciso"))
        assert pause.state.signoff is not None and pause.state.signoff.ring is not None
        other = awaiting_approval(pause.runbook, pause.state.signoff.ring, pause_suffix="e5f6a7b8")
        with pytest.raises(ActionRefused, match="signed for pause") as caught:
            pause.validate(pause.request(CISO, "ciso", envelope).model_copy(
                update={"digest": other.approval_digest}), other)
        assert caught.value.code == "bad_statement"
        proven("a signed statement replayed into another pause", "refused: signed for another pause")

    def test_a_statement_replayed_into_another_sign_off_round_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.cleo.sign(pause.statement(CISO, "ciso"))
        plan = pause.state.plan
        assert plan is not None
        # The same plan proposed again: a new round, a new nonce.
        pause.state.plan = plan.model_copy(update={"proposed_at": plan.proposed_at + timedelta(minutes=5)})
        assert signoff.advance(pause.state, lambda: "n0nce-" + "2" * 26)
        reason = refused(pause, pause.request(CISO, "ciso", envelope), "bad_statement")
        assert "another sign-off round" in reason
        proven("a signed statement replayed into a later sign-off round", "refused: another round's nonce")

    def test_an_insider_with_the_database_the_evidence_key_and_the_users_file_cannot_approve(
        self, pause: SignedPause, key_dir: object
    ) -> None:
        # They can send any actor with any roles, and sign with a key of their own under cleo's key id...
        insider = SshKey.make(key_dir, "insider")  # type: ignore[arg-type]
        forged = insider.sign(pause.statement(CISO, "ciso")).model_copy()
        forged = forged.model_copy(update={"signatures": [forged.signatures[0].model_copy(
            update={"keyid": pause.cleo.key_id})]})
        assert "does not verify" in refused(pause, pause.request(CISO, "ciso", forged), "bad_signature")
        # ...or enroll that key to cleo in the log they hold: enrolled after the pause started, it needs the
        # confirmations of two admins other than cleo, which writing the log as themselves does not give.
        late = insider.enrolled(CISO.id, confirmed_by=("local:insider",), at=STARTED + timedelta(hours=1))
        signed = insider.sign(pause.statement(CISO, "ciso"))
        reason = refused(pause, pause.request(CISO, "ciso", signed, key=late), "unknown_key")
        assert "enrolled after the pause started" in reason
        # ...or send no signature at all.
        refused(pause, pause.request(CISO, "ciso"), "signature_required")
        proven("an approval by someone holding the database, the evidence key and the users file, not the "
               "authenticator",
               "refused: signature does not verify / key enrolled during the pause not confirmed by two admins "
               "/ token alone")

    def test_an_assertion_without_user_verification_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.pat.sign(pause.statement(CPO, "cpo"), user_verified=False)
        assert "verif" in refused(pause, pause.request(CPO, "cpo", envelope), "bad_signature")
        proven("a passkey assertion without user verification", "refused: bad signature")

    def test_an_assertion_made_at_another_origin_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.pat.sign(pause.statement(CPO, "cpo"), origin="https://pausegate.evil.example")
        refused(pause, pause.request(CPO, "cpo", envelope), "bad_signature")
        proven("a passkey assertion made at another origin", "refused: bad signature")

    def test_an_assertion_made_for_another_rp_id_is_refused(self, pause: SignedPause) -> None:
        envelope = pause.pat.sign(pause.statement(CPO, "cpo"), rp_id="evil.example")
        refused(pause, pause.request(CPO, "cpo", envelope), "bad_signature")
        proven("a passkey assertion made for another RP ID", "refused: bad signature")

    def test_one_person_with_two_keys_counts_once(self, pause: SignedPause) -> None:
        pause.approve(pause.request(CPO, "cpo", pause.pat.sign(pause.statement(CPO, "cpo"))))
        second = pause.pat_ssh.sign(pause.statement(CPO, "cpo"))
        refused(pause, pause.request(CPO, "cpo", second), "duplicate_approval")
        # Were both recorded anyway (a second identity of pat), they are one key holder to the quorum.
        pause.state.approvals.append(pause.state.approvals[0].model_copy(update={"actor_id": "pat-2", "role": "cto"}))
        assert not signoff.quorum_holds(pause.runbook, pause.state)
        proven("one person approving with two keys", "refused as a duplicate; counted once")

    def test_the_commander_signing_is_refused(self, pause: SignedPause) -> None:
        own = pause.carol.sign(pause.statement(COMMANDER, "ciso"))
        commander = COMMANDER.model_copy(update={"roles": ["incident-commander", "ciso"]})
        refused(pause, pause.request(commander, "ciso", own), "separation_of_duties")
        # The commander's key under another approver's name is not that approver's key.
        as_cleo = pause.carol.sign(pause.statement(CISO, "ciso"))
        assert "enrolled to carol" in refused(pause, pause.request(CISO, "ciso", as_cleo), "unknown_key")
        proven("the commander signing an approval",
               "refused: separation of duties; under another name, not that person's key")

    def test_a_key_enrolled_during_the_pause_by_an_admin_for_someone_else_does_not_count(
        self, pause: SignedPause
    ) -> None:
        late = pause.tom.enrolled(CTO.id, by="local:ada", confirmed_by=("local:ada",),
                                  at=STARTED + timedelta(hours=1))
        envelope = pause.tom.sign(pause.statement(CTO, "cto"))
        reason = refused(pause, pause.request(CTO, "cto", envelope, key=late), "unknown_key")
        assert "not by its holder" in reason and "needs 2" in reason
        # A second admin's confirmation makes it count.
        confirmed = late.model_copy(update={"confirmed_by": ["local:ada", "local:bob"]})
        pause.validate(pause.request(CTO, "cto", envelope, key=confirmed))
        proven("a key enrolled during the pause by an admin for someone else",
               "not counted without a second admin's confirmation")

    def test_an_envelope_that_is_not_a_statement_is_refused_with_what_is_wrong(self, pause: SignedPause) -> None:
        envelope = dsse.envelope(b'{"_type": "https://in-toto.io/Statement/v1"}', pause.cleo.key_id, b"x")
        assert "subject" in refused(pause, pause.request(CISO, "ciso", envelope), "bad_statement")
