"""Who counts as whom, as pure rules: namespaced ids, roles per program, the proposer, verified emails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pausegate.auth.local import LocalUser, role_problem, split_roles
from pausegate.auth.oidc import oidc_actor_id, roles_from_groups, verified_email
from pausegate.errors import ActionRefused
from pausegate.models.checklist import ItemStatus
from pausegate.models.digests import approval_digest, checklist_digest, plan_digest
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, Approval, PlanRecord, ResumePlan
from pausegate.models.runbook import Runbook, SeparationOfDuties
from pausegate.models.updates import ApproveInput, CompleteItemInput
from pausegate.policy import authority, review

NOW = datetime(2026, 11, 29, tzinfo=UTC)
ISSUER = "https://idp.example.test/"


def runbook(program: str, **separation: bool) -> Runbook:
    return Runbook.model_validate({
        "program": {"id": program, "name": program},
        "fleet": {"connection": "fleet"},
        "datasets": [{"name": "data", "connection": "db", "schema": "telemetry"}],
        "checklist": [{"id": "scope", "title": "Scope", "roles": ["analyst"]}],
        "resume_policy": {
            "approver_roles": ["ciso", "cpo", "cto"],
            "quorum": 2,
            "proposer_roles": ["lead"],
            **({"separation_of_duties": separation} if separation else {}),
        },
    })


A, B = runbook("program-a"), runbook("program-b")
COMMANDER = Actor(id="local:carol", roles=["incident-commander"])
PLAN = ResumePlan(agents=AgentSelection(mode="all"))
PROPOSER = "local:sam"
RECORD = PlanRecord(plan=PLAN, plan_digest=plan_digest(PLAN), proposed_by=PROPOSER, proposed_at=NOW)


def items(rb: Runbook) -> list[ItemStatus]:
    return [ItemStatus(id=i.id, title=i.title, roles=i.roles, depends_on=i.depends_on, evidence_required=i.evidence)
            for i in rb.checklist]


DIGEST = approval_digest(plan_digest(PLAN), checklist_digest(items(A)))


def approve(rb: Runbook, actor: Actor, role: str, approvals: list[Approval] | None = None,
            commander: Actor = COMMANDER, record: PlanRecord = RECORD) -> None:
    review.check_approval(rb, Phase.AWAITING_APPROVAL, commander, record, DIGEST, approvals or [],
                          ApproveInput(actor=actor, role=role, digest=DIGEST))


def refusal(call: object) -> ActionRefused:
    assert callable(call)
    with pytest.raises(ActionRefused) as info:
        call()
    return info.value


def approval(actor_id: str, role: str, email: str | None = None) -> Approval:
    return Approval(actor_id=actor_id, role=role, digest=DIGEST, at=NOW, email=email)


class TestNamespaces:
    def test_a_local_name_and_an_oidc_subject_are_different_people(self) -> None:
        local = LocalUser(name="cleo", roles=["ciso"], token_sha256="a" * 64, created_at=NOW).actor()
        subject = oidc_actor_id(ISSUER, "cleo")
        assert (local.id, subject) == ("local:cleo", "oidc:https://idp.example.test/#cleo")
        # The subject approved; the local namesake is someone else, not a second approval of hers...
        approve(A, local, "ciso", [approval(subject, "cto")])
        # ...and when the local user approved, the subject may still approve for herself.
        approve(A, Actor(id=subject, roles=["cto"]), "cto", [approval(local.id, "ciso")])

    def test_separation_of_duties_compares_namespaced_ids(self) -> None:
        commander = Actor(id=oidc_actor_id(ISSUER, "carol"), roles=["incident-commander", "ciso"])
        assert refusal(lambda: approve(A, commander, "ciso", commander=commander)).code == "separation_of_duties"
        # A local user called carol did not pause this program.
        approve(A, Actor(id="local:carol", roles=["ciso"]), "ciso", commander=commander)

    def test_a_local_name_cannot_carry_another_namespace(self) -> None:
        for name in ("oidc:https://idp.example.test/#cleo", "cleo#1", "local:cleo"):
            with pytest.raises(ValueError):
                LocalUser(name=name, roles=["ciso"], token_sha256="a" * 64, created_at=NOW)


class TestProgramRoles:
    def test_roles_are_resolved_for_one_program(self) -> None:
        actor = Actor(id="local:x", roles=["staff"], program_roles={"program-a": ["ciso"], "program-b": ["cpo"]})
        for_a = actor.for_program("program-a")
        assert (for_a.roles, for_a.program_roles) == (["ciso", "staff"], {})
        assert for_a.for_program("program-a") == for_a  # resolving twice changes nothing
        assert actor.for_program("program-c").roles == ["staff"]

    def test_a_ciso_of_program_a_cannot_approve_program_b(self) -> None:
        ciso_of_a = Actor(id="local:olivia", program_roles={"program-a": ["ciso"]})
        refused = refusal(lambda: approve(B, ciso_of_a, "ciso"))
        assert refused.code == "wrong_role" and "program-a" not in refused.reason
        approve(A, ciso_of_a, "ciso")

    def test_global_roles_still_count_everywhere(self) -> None:
        approve(A, Actor(id="local:tom", roles=["cto"]), "cto")
        approve(B, Actor(id="local:tom", roles=["cto"]), "cto")

    def test_checklist_roles_are_resolved_too(self) -> None:
        analyst_of_b = Actor(id="local:ann", program_roles={"program-b": ["analyst"]})
        request = CompleteItemInput(actor=analyst_of_b, item_id="scope", evidence=[])
        assert refusal(lambda: review.check_completion(A, Phase.UNDER_REVIEW, items(A), request)).code == "wrong_role"
        review.check_completion(B, Phase.UNDER_REVIEW, items(B), request)

    def test_local_role_format_and_oidc_groups(self) -> None:
        assert split_roles(["staff", "ciso@program-a", "cpo@program-a"]) == (
            ["staff"], {"program-a": ["ciso", "cpo"]})
        assert role_problem("ciso@program-a") is None
        assert role_problem("admin@program-a") is not None  # admin is API-wide
        assert role_problem("ciso@Program A") is not None
        groups = ["staff", "pausegate:program-a:ciso", "pausegate:cto", "pausegate:Bad Program:cpo", "pausegate:"]
        assert roles_from_groups(groups) == (["cto"], {"program-a": ["ciso"]})


class TestProposer:
    def test_the_proposer_cannot_approve_by_default(self) -> None:
        assert SeparationOfDuties().proposer_cannot_approve is True
        proposer = Actor(id=PROPOSER, roles=["lead", "ciso"])
        assert refusal(lambda: approve(A, proposer, "ciso")).code == "separation_of_duties"

    def test_a_runbook_may_allow_it_explicitly(self) -> None:
        lenient = runbook("program-a", proposer_cannot_approve=False)
        approve(lenient, Actor(id=PROPOSER, roles=["lead", "ciso"]), "ciso")


class TestVerifiedEmail:
    def test_only_a_verified_email_is_taken_lower_cased(self) -> None:
        assert verified_email({"email": "Cleo@Example.COM", "email_verified": True}) == "cleo@example.com"
        assert verified_email({"email": "cleo@example.com", "email_verified": False}) is None
        assert verified_email({"email": "cleo@example.com"}) is None

    def test_a_second_identity_with_the_same_email_is_a_duplicate_approval(self) -> None:
        first = approval(oidc_actor_id(ISSUER, "cleo-laptop"), "ciso", "cleo@example.com")
        second = Actor(id=oidc_actor_id(ISSUER, "cleo-admin"), roles=["cto"], email="cleo@example.com")
        refused = refusal(lambda: approve(A, second, "cto", [first]))
        assert refused.code == "duplicate_approval" and "same verified email" in refused.reason
        approve(A, second.model_copy(update={"email": "other@example.com"}), "cto", [first])

    def test_the_commanders_other_identity_may_not_approve(self) -> None:
        commander = Actor(id=oidc_actor_id(ISSUER, "carol"), roles=["incident-commander"], email="carol@example.com")
        other = Actor(id=oidc_actor_id(ISSUER, "carol-2"), roles=["ciso"], email="carol@example.com")
        assert refusal(lambda: approve(A, other, "ciso", commander=commander)).code == "separation_of_duties"

    def test_the_proposers_other_identity_may_not_approve(self) -> None:
        proposed = RECORD.model_copy(update={"proposed_by": oidc_actor_id(ISSUER, "sam"),
                                             "proposed_by_email": "sam@example.com"})
        other = Actor(id=oidc_actor_id(ISSUER, "sam-2"), roles=["ciso"], email="sam@example.com")
        assert refusal(lambda: approve(A, other, "ciso", record=proposed)).code == "separation_of_duties"
        approve(A, other.model_copy(update={"email": "pat@example.com"}), "ciso", record=proposed)

    def test_approvals_with_one_email_count_once_toward_quorum(self) -> None:
        one = approval("oidc:x#a", "ciso", "cleo@example.com")
        same_person = approval("oidc:x#b", "cto", "cleo@example.com")
        someone_else = approval("oidc:x#c", "cto", "pat@example.com")
        assert not review.quorum_met(A, [one, same_person], DIGEST)
        assert review.quorum_met(A, [one, someone_else], DIGEST)
        # Without emails, distinct ids are distinct people.
        assert review.quorum_met(A, [approval("local:a", "ciso"), approval("local:b", "cto")], DIGEST)


class TestUserAdministration:
    def test_the_last_local_admin_keeps_the_role(self) -> None:
        assert refusal(lambda: authority.require_an_admin_remains(["local:ada"], [], "removing ada")).code \
            == "last_admin"
        authority.require_an_admin_remains(["local:ada"], ["local:abe"], "removing ada")
        # Where no local user was an admin (an OIDC admin manages them), there is nothing to keep.
        authority.require_an_admin_remains([], [], "removing ann")

    def test_only_the_global_admin_role_manages_users(self) -> None:
        scoped = Actor(id="local:x", program_roles={"program-a": ["admin"]})
        assert refusal(lambda: authority.require_user_admin(scoped, "adding users")).code == "wrong_role"
        authority.require_user_admin(Actor(id="local:ada", roles=["admin"]), "adding users")
