"""The console's pause and plan pages show break-glass: the grants (how many, how many open) and the
runbook's static break-glass roles as the standing exceptions they are."""

from __future__ import annotations

from tests.console.support import ConsoleWorld
from tests.support.break_glass_reads import grant_of


class TestConsoleBreakGlass:
    async def test_pages_show_the_grants_and_the_standing_exceptions(self, console: ConsoleWorld) -> None:
        p = console.program
        started = await console.http("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
        assert started.status_code in (200, 201), started.text
        await console.api.wait_for_state("UNDER_REVIEW", timeout=120)
        asked = await console.http("ann").post(f"/v1/pauses/{p}/break-glass", json={
            "dataset": "telemetry", "tables": [{"table": "keystrokes"}], "reason": "confirm the leaked rows",
            "duration": "PT10M", "emergency": True})
        assert asked.status_code == 200, asked.text
        await grant_of(console.api, "open")

        pia = await console.sign_in("pia")
        for path in (f"/console/pauses/{p}", f"/console/pauses/{p}/plan"):
            page = await pia.open(path)
            fact = (await page.locator("[data-fact=break-glass]").inner_text()).strip()
            assert fact == ("1 grants, 1 open, 0 ended; "
                            "standing exceptions (static roles): telemetry: security_breakglass")
        pia.assert_clean()
