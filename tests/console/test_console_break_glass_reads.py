"""Who saw what lists a grant's reads as break-glass reads, read from the grant's sealed document the
pause recorded: the API's ``?scope=true`` view and the console's pause page (review roles only)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pausegate.models.evidence import EvidenceRef
from tests.api.support import local
from tests.console.support import ConsoleWorld
from tests.support.break_glass_reads import a_grant_that_read, expected_entries
from tests.support.harness import Harness

SHOWN = ("kind", "grant", "holder", "role", "dataset", "tables", "object", "reads", "failed", "document_sha256")


def shown(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: e[k] for k in SHOWN} for e in entries]


def lower_the_reads(directory: Path) -> int:
    """Someone with write access to the store lowers the count in the grant's reads document."""
    altered = 0
    for stored in directory.rglob("*"):
        data = stored.read_bytes() if stored.is_file() else b""
        if b'"kind":"break-glass"' in data and b'"reads":2' in data:
            stored.write_bytes(data.replace(b'"reads":2', b'"reads":0'))
            altered += 1
    return altered


class TestBreakGlassReadsShown:
    async def test_the_api_and_the_console_list_the_grants_reads_as_break_glass(
            self, console: ConsoleWorld, harness: Harness) -> None:
        closed = await a_grant_that_read(console.api, harness)
        expected = expected_entries(closed, local("ann"))
        ref = closed["closed"]["reads_report"]
        recorded = EvidenceRef.model_validate(ref)
        sealed = harness.connectors.evidence_store.read_json(recorded.key, recorded.sha256)
        assert [(e["user"], e["object"], e["reads"], e["failed"]) for e in sealed["who_saw_what"]["entries"]] == [
            (closed["role"], "telemetry.keystrokes", 2, 1)]

        p = console.program
        scoped = await console.http("pia").get(f"/v1/pauses/{p}", params={"scope": "true"})
        assert scoped.status_code == 200, scoped.text
        assert shown(scoped.json()["break_glass_reads"]) == expected
        # without ?scope=true, or for someone without a review role, nothing of them
        assert (await console.http("pia").get(f"/v1/pauses/{p}")).json()["break_glass_reads"] is None
        outsider = console.api.client(token=console.api.issuer.token("olga", ["employees"]))  # no role in it
        assert (await outsider.get(f"/v1/pauses/{p}", params={"scope": "true"})).status_code == 403
        plain = (await outsider.get(f"/v1/pauses/{p}")).json()
        assert plain["redacted"] is True and plain["break_glass_reads"] is None

        pia = await console.sign_in("pia")
        page = await pia.open(f"/console/pauses/{p}")
        row = page.locator("[data-fact=break-glass-reads] tbody tr[data-grant=g1]")
        cells = [c.strip() for c in await row.locator("td").all_inner_texts()]
        assert cells[:7] == ["break-glass", "g1", local("ann"), "keystrokes(id, employee)", "telemetry.keystrokes",
                             "2", "1"]
        assert await row.locator("code").get_attribute("title") == ref["sha256"]
        pia.assert_clean()

    async def test_a_reads_document_that_is_not_the_recorded_one_is_not_shown(
            self, console: ConsoleWorld, harness: Harness) -> None:
        await a_grant_that_read(console.api, harness)
        assert await asyncio.to_thread(lower_the_reads, Path(harness.settings.evidence.directory)) >= 1

        scoped = await console.http("pia").get(f"/v1/pauses/{console.program}", params={"scope": "true"})
        assert scoped.status_code == 503 and scoped.json()["error"] == "evidence_unavailable"
        pia = await console.sign_in("pia")
        page = await pia.open(f"/console/pauses/{console.program}")
        assert "grant g1" in await page.locator("[data-fact=break-glass-reads-unreadable]").inner_text()
        assert await page.locator("[data-fact=break-glass-reads] tbody tr[data-grant=g1]").count() == 0
