"""Identity decides quorum, through the API: namespaced ids, roles per program, the proposer, verified emails.

Each test starts from the worked example waiting for approvals: contained, reviewed, a plan proposed
by the commander (local:carol). Approver roles are ciso, cpo and cto; two different roles must approve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from pausegate.models.people import Actor
from tests.api.support import NARROWED_PLAN, ApiWorld, api_world, local, oidc
from tests.support.harness import Harness

# Holds a proposer role and an approver role: may propose, may approve, but not both for one plan.
MAX = Actor(id="max", roles=["security-lead", "ciso"])


@pytest_asyncio.fixture
async def awaiting(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api", extra_people=[MAX]) as api:
        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert r.status_code == 201, r.text
        await api.wait_for_state("UNDER_REVIEW")
        await api.complete_review()
        r = await api.client("carol").post(f"/v1/pauses/{api.program}/plan", json=NARROWED_PLAN)
        assert r.status_code == 200, r.text
        await api.wait_for_state("AWAITING_APPROVAL")
        yield api


async def approve(api: ApiWorld, *, who: str | None = None, token: str | None = None, **body: Any) -> Any:
    view = await api.view()
    client = api.client(who) if who is not None else api.client(token=token)
    return await client.post(f"/v1/pauses/{api.program}/approvals", json={"digest": view["approval_digest"], **body})


async def add_user(api: ApiWorld, name: str, roles: list[str]) -> str:
    r = await api.client("ada").post("/v1/users", json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


class TestNamespaces:
    async def test_a_local_user_named_like_an_oidc_subject_cannot_approve_in_its_place(
        self, awaiting: ApiWorld
    ) -> None:
        api = awaiting
        # The real CISO signs in through the identity provider as subject "cleo". A local user named
        # "cleo" (an admin made one, and gave it the ciso role) approves first.
        impostor = await approve(api, who="cleo")
        assert impostor.status_code == 200, impostor.text
        assert impostor.json()["actor"] == local("cleo")

        # The approval is on record as the local user's, not the subject's: when the real cleo approves
        # (as CTO here, the ciso role being taken), hers is not "already given" by the local namesake.
        real = api.issuer.token("cleo", ["cto"])
        assert (await api.client(token=real).get("/v1/whoami")).json()["id"] == oidc("cleo")
        approved = await approve(api, token=real)
        assert approved.status_code == 200, approved.text
        view = await api.wait_for_state("RESUMING", "RESUMED")
        approvals = {(a["actor_id"], a["role"]) for a in view["approvals"]}
        assert approvals == {(local("cleo"), "ciso"), (oidc("cleo"), "cto")}

        # Nor can a local name be made to carry the subject's id.
        r = await api.client("ada").post("/v1/users", json={"name": oidc("cleo"), "roles": ["cto"]})
        assert r.status_code == 422


class TestProgramRoles:
    async def test_a_ciso_of_another_program_cannot_approve_and_one_of_this_program_can(
        self, awaiting: ApiWorld
    ) -> None:
        api = awaiting
        p = api.program
        other = await add_user(api, "olivia", ["ciso@another-program"])
        refused = await approve(api, token=other)
        assert refused.status_code == 403 and refused.json()["error"] == "wrong_role", refused.text
        # The refusal names the roles effective here: none (the other program's are not shown).
        assert "another-program" not in refused.json()["detail"]
        oidc_other = api.issuer.token("oscar", ["pausegate:another-program:cpo"])
        assert (await approve(api, token=oidc_other)).status_code == 403
        assert (await api.view())["approvals"] == []

        # The same roles held for this program approve, and count toward the quorum.
        mine = await add_user(api, "cecile", [f"ciso@{p}"])
        first = await approve(api, token=mine)
        assert first.status_code == 200, first.text
        second = await approve(api, token=api.issuer.token("paula", [f"pausegate:{p}:cpo"]))
        assert second.status_code == 200, second.text
        view = await api.wait_for_state("RESUMING", "RESUMED")
        assert {(a["actor_id"], a["role"]) for a in view["approvals"]} == {(local("cecile"), "ciso"),
                                                                           (oidc("paula"), "cpo")}

    async def test_a_program_named_in_the_body_resolves_roles_too(self, awaiting: ApiWorld) -> None:
        # The trigger names its program in the body, not the path: a commander of this program only
        # pulls the switch (the pause is open already: 200), a commander of another program may not.
        api = awaiting
        here = await add_user(api, "cora", [f"incident-commander@{api.program}"])
        elsewhere = await add_user(api, "otto", ["incident-commander@another-program"])
        body = {"program": api.program, "reason": "again"}
        pulled = await api.client(token=here).post("/v1/pauses", json=body)
        assert pulled.status_code == 200 and pulled.json()["started"] is False, pulled.text
        refused = await api.client(token=elsewhere).post("/v1/pauses", json=body)
        assert refused.status_code == 403 and refused.json()["error"] == "wrong_role", refused.text


class TestSeparationOfDuties:
    async def test_the_proposer_cannot_approve_their_own_plan(self, awaiting: ApiWorld) -> None:
        api = awaiting
        p = api.program
        proposed = await api.client("max").post(f"/v1/pauses/{p}/plan", json={**NARROWED_PLAN, "summary": "mine"})
        assert proposed.status_code == 200, proposed.text
        refused = await approve(api, who="max")
        assert refused.status_code == 403 and refused.json()["error"] == "separation_of_duties", refused.text
        # Another ciso may: the refusal was about who proposed, not about the role.
        assert (await approve(api, who="cleo")).status_code == 200

    async def test_two_oidc_identities_with_one_verified_email_count_once(self, awaiting: ApiWorld) -> None:
        api = awaiting
        same = {"email": "Cleo@Example.com", "email_verified": True}
        laptop = api.issuer.token("cleo-laptop", ["ciso"], extra=same)
        admin = api.issuer.token("cleo-admin", ["cto"], extra={**same, "email": "cleo@example.com"})
        assert (await approve(api, token=laptop)).status_code == 200
        twice = await approve(api, token=admin)
        assert twice.status_code == 409 and twice.json()["error"] == "duplicate_approval", twice.text
        assert "the same verified email" in twice.json()["detail"]
        view = await api.view()
        assert view["state"] == "AWAITING_APPROVAL"  # one person, one approval: no quorum yet
        assert [(a["actor_id"], a["email"]) for a in view["approvals"]] == [(oidc("cleo-laptop"), "cleo@example.com")]

        # An email the provider did not verify proves nothing: that identity is a person of its own.
        unverified = api.issuer.token("cleo-other", ["cpo"], extra={"email": "cleo@example.com",
                                                                   "email_verified": False})
        assert (await approve(api, token=unverified)).status_code == 200
        await api.wait_for_state("RESUMING", "RESUMED")
