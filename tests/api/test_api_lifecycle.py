"""The worked example driven through the HTTP API by the people who run it."""

from __future__ import annotations

from tests.api.support import NARROWED_PLAN, REVIEW, ApiWorld, local


class TestLifecycleThroughTheApi:
    async def test_commander_reviewers_and_leaders_take_the_example_from_pause_to_resume(self, api: ApiWorld) -> None:
        p = api.program
        carol = api.client("carol")

        first = await carol.post(
            "/v1/pauses", json={"program": p, "reason": "telemetry readable company-wide", "severity": "critical"}
        )
        assert first.status_code == 201, first.text
        assert first.json()["started"] is True
        assert first.json()["pause"]["commander"] == local("carol")

        again = await carol.post("/v1/pauses", json={"program": p, "reason": "pulled again"})
        assert again.status_code == 200
        assert again.json()["started"] is False
        assert again.json()["pause"]["reason"] == "telemetry readable company-wide"

        view = await api.wait_for_state("UNDER_REVIEW")
        progress = view["progress"]
        assert (progress["agents_total"], progress["agents_halted"], progress["agents_unconfirmed"]) == (200, 200, 0)
        assert progress["switch_off"] and progress["access_revoked"] and progress["evidence_sealed"]
        assert progress["revoke_statements"] >= 1 and progress["datasets_verified"] == progress["datasets_total"] == 1
        assert view["exposure"][0]["dataset"] == "telemetry"
        assert view["exposure"][0]["roles_with_access"] >= 3
        assert view["exposure"][0]["document"] is None  # only on request

        # A reviewer asks for the recorded scope: who could read the data before the pause.
        scoped = await api.client("ann").get(f"/v1/pauses/{p}", params={"scope": "true"})
        assert scoped.status_code == 200
        document = scoped.json()["exposure"][0]["document"]
        assert document["dataset"] == "telemetry"
        assert any(g["grantee"].lower() == "public" for g in document["grants"]), document["grants"][:3]

        checklist = await api.client("sam").get(f"/v1/pauses/{p}/checklist")
        assert [i["id"] for i in checklist.json()] == [item for item, _, _ in REVIEW]

        await api.complete_review()
        proposed = await carol.post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
        assert proposed.status_code == 200, proposed.text
        assert proposed.json()["state"] == "AWAITING_APPROVAL"
        digest = proposed.json()["digest"]
        assert digest == (await api.view())["approval_digest"]

        # The report is not there before the pause closes.
        early = await carol.get(f"/v1/pauses/{p}/report")
        assert early.status_code == 409 and early.json()["error"] == "no_report"

        for who in ("cleo", "pat"):
            approved = await api.client(who).post(f"/v1/pauses/{p}/approvals", json={"digest": digest})
            assert approved.status_code == 200, approved.text
            assert approved.json()["actor"] == local(who)

        # The report is written as the pause closes, just after it enters RESUMED.
        final = await api.wait_for(lambda v: v["state"] == "RESUMED" and v["report"] is not None, timeout=90,
                                   what="resumed with its report")
        assert final["report"] is not None

        # Every action is in the timeline under the person whose token made it.
        entries = {(e["actor"], e["action"]) for e in final["timeline"] if e["accepted"]}
        assert (local("carol"), "pause.started") in entries
        assert (local("carol"), "plan.proposed") in entries
        assert {(local(who), "checklist.completed") for _, who, _ in REVIEW} <= entries
        assert {(local("cleo"), "plan.approved"), (local("pat"), "plan.approved")} <= entries
        approvals = {(a["actor_id"], a["role"]) for a in final["approvals"]}
        assert approvals == {(local("cleo"), "ciso"), (local("pat"), "cpo")}

        markdown = await api.client("tom").get(f"/v1/pauses/{p}/report", params={"format": "markdown"})
        assert markdown.status_code == 200
        assert markdown.headers["content-type"].startswith("text/markdown")
        text = markdown.text
        assert text.startswith(f"# Pause report: {p}")
        assert "**Outcome:** RESUMED" in text
        assert "local:cleo (ciso) approved" in text and "local:pat (cpo) approved" in text
        assert "Time to contain" in text

        report = await api.client("tom").get(f"/v1/pauses/{p}/report")
        assert report.status_code == 200
        assert report.json()["status"]["state"] == "RESUMED"
        assert report.json()["restore"][0]["verified"] is True

        listed = await api.client("tom").get("/v1/pauses")
        assert [(r["program"], r["state"]) for r in listed.json()] == [(p, "RESUMED")]

        # A closed pause takes no more actions.
        late = await api.client("ann").post(
            f"/v1/pauses/{p}/checklist/access-review", json={"evidence": [{"name": "access-report", "uri": "x"}]}
        )
        assert late.status_code == 409, late.text
