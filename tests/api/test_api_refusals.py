"""Every refusal has its status code, changes nothing in the workflow, and (when someone is known) is in the
timeline under the verified actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from pausegate.models.people import Actor
from tests.api.support import NARROWED_PLAN, ApiWorld, api_world, local, oidc
from tests.support.harness import Harness

# A commander who also holds an approver role: separation of duties must still stop her approving.
CARA = Actor(id="cara", roles=["incident-commander", "ciso"])


def unchanged_part(view: dict[str, Any]) -> dict[str, Any]:
    """The view without refusal entries: what a refused request must leave exactly as it was."""
    return {**view, "timeline": [e for e in view["timeline"] if e["accepted"]]}


def refusals(view: dict[str, Any]) -> list[tuple[str, str]]:
    """(actor, action) once per refusal: refusals of one actor and action within a minute share an entry."""
    return [(e["actor"], e["action"]) for e in view["timeline"] if not e["accepted"] for _ in range(e["count"])]


@pytest_asyncio.fixture
async def awaiting(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    """A pause of the example, contained, reviewed, with a plan: waiting for approvals."""
    async with api_world(harness, tmp_path / "api", extra_people=[CARA]) as api:
        r = await api.client("cara").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert r.status_code == 201, r.text
        await api.wait_for_state("UNDER_REVIEW")
        await api.complete_review()
        r = await api.client("cara").post(f"/v1/pauses/{api.program}/plan", json=NARROWED_PLAN)
        assert r.status_code == 200, r.text
        await api.wait_for_state("AWAITING_APPROVAL")
        yield api


class TestRefusals:
    async def test_each_refusal_has_its_status_and_changes_nothing(self, awaiting: ApiWorld) -> None:
        api = awaiting
        p = api.program
        before = await api.view("cara")
        digest = before["approval_digest"]
        approve = f"/v1/pauses/{p}/approvals"
        body = {"digest": digest}
        issuer = api.issuer

        unauthenticated = {
            "no token": api.client(token=None),
            "bad token": api.client(token="pgt_not-a-real-token"),
            "expired JWT": api.client(token=issuer.token("tom", ["cto"], expires_in=-120)),
            "wrong audience": api.client(token=issuer.token("tom", ["cto"], aud="someone-else")),
            "wrong issuer": api.client(token=issuer.token("tom", ["cto"], iss="https://evil.example")),
            "bad signature": api.client(token=issuer.token("tom", ["cto"], key=issuer.other_key)),
            "no groups claim": api.client(token=issuer.token("tom", None)),
        }
        for what, client in unauthenticated.items():
            r = await client.post(approve, json=body)
            assert r.status_code == 401, (what, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer"), what
            assert (await client.get(f"/v1/pauses/{p}")).status_code == 401, what

        # Authenticated, not allowed: 403 with the workflow's reason.
        ann_approves = await api.client("ann").post(approve, json=body)
        assert ann_approves.status_code == 403
        assert ann_approves.json()["error"] == "wrong_role"
        ann_approves_as_ciso = await api.client("ann").post(approve, json={**body, "role": "ciso"})
        assert ann_approves_as_ciso.status_code == 403
        assert "approving as 'ciso' is for roles ciso; local:ann has" in ann_approves_as_ciso.json()["detail"]
        commander = await api.client("cara").post(approve, json=body)
        assert commander.status_code == 403
        assert commander.json()["error"] == "separation_of_duties"
        assert "commander" in commander.json()["detail"]
        proposes = await api.client("ann").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
        assert proposes.status_code == 403 and proposes.json()["error"] == "wrong_role"
        triggers = await api.client("ann").post("/v1/pauses", json={"program": p, "reason": "me too"})
        assert triggers.status_code == 403 and triggers.json()["error"] == "wrong_role"
        scope = await api.client("tom").get(f"/v1/pauses/{p}", params={"scope": "false"})
        assert scope.status_code == 200

        # Conflicts and invalid input: 409 and 422 with the workflow's reason.
        stale = await api.client("cleo").post(approve, json={"digest": "0" * 64})
        assert stale.status_code == 409 and stale.json()["error"] == "stale_plan"
        missing = await api.client("ann").post(f"/v1/pauses/{p}/checklist/access-review", json={"evidence": []})
        assert missing.status_code == 422 and missing.json()["error"] == "missing_evidence"
        unknown_item = await api.client("ann").post(f"/v1/pauses/{p}/checklist/nope", json={"evidence": []})
        assert unknown_item.status_code == 404 and unknown_item.json()["error"] == "unknown_item"
        wide = {**NARROWED_PLAN, "grants": [{**NARROWED_PLAN["grants"][0], "role": "all_employees"}]}
        invalid_plan = await api.client("sam").post(f"/v1/pauses/{p}/plan", json=wide)
        assert invalid_plan.status_code == 422 and invalid_plan.json()["error"] == "invalid_plan"
        nothing_to_waive = await api.client("cara").post(
            f"/v1/pauses/{p}/waivers", json={"all_unconfirmed": True, "reason": "gone"}
        )
        assert nothing_to_waive.status_code == 409 and nothing_to_waive.json()["error"] == "nothing_to_waive"
        actor_in_body = await api.client("ann").post(approve, json={**body, "actor": {"id": "cleo", "roles": ["ciso"]}})
        assert actor_in_body.status_code == 422
        unknown_program = await api.client("cleo").post("/v1/pauses/no-such-program/approvals", json=body)
        assert unknown_program.status_code == 404 and unknown_program.json()["error"] == "unknown_program"

        # Refusals of one actor and action after the first within a minute wait for the minute's end
        # (one signal carrying their count); record them now rather than wait.
        await api.app.state.api.recorder.flush()
        after = await api.view("cara")
        assert unchanged_part(after) == unchanged_part(before)
        assert after["approvals"] == [] and after["state"] == "AWAITING_APPROVAL"
        # Every refusal by a known person is in the timeline, under that person; 401s name nobody.
        recorded = refusals(after)
        for expected in [
            (local("ann"), "refused.approve_plan"),
            (local("cara"), "refused.approve_plan"),
            (local("ann"), "refused.propose_plan"),
            (local("ann"), "refused.trigger"),
            (local("cleo"), "refused.approve_plan"),
            (local("ann"), "refused.complete_item"),
            (local("sam"), "refused.propose_plan"),
            (local("cara"), "refused.waive_agents"),
        ]:
            assert expected in recorded, (expected, recorded)
        assert not any(actor == oidc("tom") for actor, _ in recorded)
        assert sum(1 for r in recorded if r == (local("ann"), "refused.approve_plan")) == 2

        # The same leader with a valid JWT is let in, with the roles from the groups claim.
        tom = api.client(token=issuer.token("tom", ["cto", "employees"]))
        who = await tom.get("/v1/whoami")
        assert who.json() == {"id": oidc("tom"), "roles": ["cto"]}  # employees is no group of pausegate's
        approved = await tom.post(approve, json=body)
        assert approved.status_code == 200, approved.text
        assert (await api.view())["approvals"][0]["actor_id"] == oidc("tom")

    async def test_a_reader_without_a_review_role_cannot_see_the_exposure_scope(self, awaiting: ApiWorld) -> None:
        api = awaiting
        outsider = api.client(token=api.issuer.token("olga", ["employees"]))
        olga = (await outsider.get("/v1/whoami")).json()["id"]
        r = await outsider.get(f"/v1/pauses/{api.program}", params={"scope": "true"})
        assert r.status_code == 403 and r.json()["error"] == "wrong_role"
        plain = await outsider.get(f"/v1/pauses/{api.program}")
        assert plain.status_code == 200 and plain.json()["redacted"] is True
        assert plain.json()["exposure"] == [] and plain.json()["plan"]["diff"][0]["loses_roles"] == []
        # Olga holds no role in the program: her refusal is in the API's log, never in the pause's workflow.
        assert not any(actor == olga for actor, _ in refusals(await api.view()))
        logged = [(e.actor, e.program, e.action) for e in api.app.state.api.refusals.entries()]
        assert logged == [(olga, api.program, "refused.read_scope")]
