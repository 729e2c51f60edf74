"""Drills through the API (and the console's page and the CLI's rendering of one): a commander starts a
drill, anyone with a role in the program reads it, nobody else starts one, none starts while a pause is
open."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console

from pausegate.cli.drill import report
from pausegate.models.drill import DrillState
from tests.api.support import api_world, local
from tests.console.test_console_http import signed_in
from tests.drill.support import drill_runbook
from tests.support.harness import HarnessFactory
from tests.support.polling import polled


class TestDrillsThroughTheApi:
    async def test_a_commander_drills_an_analyst_may_not_and_no_drill_starts_while_a_pause_is_open(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            h.runbook = drill_runbook(h)
            async with api_world(h, tmp_path / "api") as api:
                p, carol = api.program, api.client("carol")
                refused = await api.client("ann").post(f"/v1/drills/{p}", json={"reason": "practice"})
                assert refused.status_code == 403 and refused.json()["error"] == "wrong_role"

                started = await carol.post(f"/v1/drills/{p}", json={"reason": "practice"})
                assert started.status_code == 201, started.text
                assert started.json()["commander"] == local("carol") and started.json()["label"] == "drill"
                async def restored() -> dict[str, Any] | None:
                    drill = (await api.client("ann").get(f"/v1/drills/{p}")).json()
                    return drill if drill["phase"] == "RESTORED" else None

                drill = await polled(restored, what="the drill restored")
                assert drill["outcome"] == "completed" and drill["restore"]["equal"]
                async with signed_in(api, "ann") as browser:
                    page = await browser.get(f"/console/drills/{p}")
                assert page.status_code == 200 and 'data-fact="drill-phase">RESTORED<' in page.text
                assert "equal to the snapshot" in page.text and page.text.count('data-done="yes"') == 4

                assert (await carol.post("/v1/pauses", json={"program": p, "reason": "leak"})).status_code == 201
                during = await carol.post(f"/v1/drills/{p}", json={"reason": "practice"})
                assert during.status_code == 409 and during.json()["error"] == "pause_open"

        rendered = io.StringIO()
        Console(file=rendered, width=120).print(report(DrillState.model_validate(drill)))
        text = rendered.getvalue()
        assert "equal to the snapshot" in text and "switch off" in text and "no prober" in text
