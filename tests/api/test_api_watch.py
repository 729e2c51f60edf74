"""The watch through the API: the worked example's conditioned plan resumes the program, the watch is
readable, and only the runbook's consent roles may withdraw an employee's consent through it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from pausegate.models.fleet import AgentState
from pausegate.models.runbook import WatchSpec
from tests.api.support import api_world, local
from tests.support.harness import ROOT, HarnessFactory

PLAN = yaml.safe_load((ROOT / "examples" / "resume-plan.yaml").read_text())


@pytest.mark.slow
class TestWatchApi:
    async def test_the_example_plan_resumes_and_a_privacy_officer_withdraws_consent(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=10) as h:
            h.runbook = h.runbook.model_copy(update={"watch": WatchSpec(period=timedelta(minutes=10),
                                                                        interval=timedelta(seconds=2))})
            async with api_world(h, tmp_path / "api") as api:
                p, carol = api.program, api.client("carol")
                assert (await carol.post("/v1/pauses", json={"program": p, "reason": "leak"})).status_code in (200, 201)
                await api.wait_for_state("UNDER_REVIEW")
                await api.complete_review()
                proposed = await api.client("sam").post(f"/v1/pauses/{p}/plan", json=PLAN)
                assert proposed.status_code == 200, proposed.text
                for who in ("cleo", "pat"):
                    approved = await api.client(who).post(f"/v1/pauses/{p}/approvals",
                                                          json={"digest": proposed.json()["digest"]})
                    assert approved.status_code == 200, approved.text
                await api.wait_for(lambda v: any(e["action"] == "watch.started" for e in v["timeline"]),
                                   what="the watch started")

                watch = await carol.get(f"/v1/pauses/{p}/watch")
                assert watch.status_code == 200 and watch.json()["status"] == "watching"

                path = f"/v1/pauses/{p}/watch/consent-withdrawals"
                body = {"employee": "employee_0002", "reason": "asked by the employee"}
                refused = await api.client("cleo").post(path, json=body)
                assert refused.status_code == 403 and refused.json()["error"] == "wrong_role"
                assert "privacy-officer" in refused.json()["detail"]
                program = h.fleet_state.program(h.program)
                mine = ["agent-00002", "agent-00007"]
                assert all(program.state_of(program.agents[a]) == AgentState.COLLECTING for a in mine)

                accepted = await api.client("pia").post(path, json=body)
                assert accepted.status_code == 200, accepted.text
                assert accepted.json()["actor"] == local("pia") and "2 agents halted" in accepted.json()["message"]
                assert all(program.state_of(program.agents[a]) == AgentState.HALTED for a in mine)
                watch = await carol.get(f"/v1/pauses/{p}/watch")
                assert watch.json()["withdrawn"] == ["employee_0002"]
