"""A grant that read the data, ended, for the tests of who saw what through break-glass: the commander
pauses, the analyst asks, the commander approves, the grant's role reads the keystrokes twice (and is
refused a column it was not given), the analyst returns it; the pause records its reads document."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.api.support import ApiWorld
from tests.support.harness import Harness
from tests.support.polling import polled

READS = 2


async def grant_of(api: ApiWorld, status: str) -> dict[str, Any]:
    """The program's first grant, once the API lists it as ``status``."""
    async def grants() -> list[dict[str, Any]]:
        response = await api.client("carol").get(f"/v1/pauses/{api.program}/break-glass")
        assert response.status_code == 200, response.text
        return list(response.json()["grants"])
    found = await polled(grants, until=lambda found: bool(found) and found[0]["status"] == status,
                         what=f"the grant {status}")
    return dict(found[0])


async def a_grant_that_read(api: ApiWorld, harness: Harness) -> dict[str, Any]:
    """The grant (as the API lists it) once closed with its reads recorded."""
    p = api.program
    started = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
    assert started.status_code in (200, 201), started.text
    await api.wait_for_state("UNDER_REVIEW", timeout=120)
    asked = await api.client("ann").post(f"/v1/pauses/{p}/break-glass", json={
        "dataset": "telemetry", "tables": [{"table": "keystrokes", "columns": ["id", "employee"]}],
        "reason": "confirm the leaked rows", "duration": "PT10M"})
    assert asked.status_code == 200, asked.text
    approved = await api.client("carol").post(f"/v1/pauses/{p}/break-glass/g1/approve")
    assert approved.status_code == 200, approved.text
    grant = await grant_of(api, "open")
    with psycopg.connect(harness.dsn_as(grant["role"]), autocommit=True) as conn:
        for _ in range(READS):
            assert conn.execute("SELECT count(*) >= 0 FROM telemetry.keystrokes WHERE employee <> ''"
                                ).fetchone() == (True,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT typed_content FROM telemetry.keystrokes")
    ended = await api.client("ann").post(f"/v1/pauses/{p}/break-glass/g1/end", json={"reason": "seen enough"})
    assert ended.status_code == 200, ended.text
    closed = await grant_of(api, "closed")
    assert closed["closed"]["reads_report"] is not None
    return closed


def expected_entries(closed: dict[str, Any], holder: str) -> list[dict[str, Any]]:
    """What who saw what must list for the grant: the sealed document's entries, labelled break-glass."""
    return [{"kind": "break-glass", "grant": "g1", "holder": holder, "role": closed["role"], "dataset": "telemetry",
             "tables": ["keystrokes(id, employee)"], "object": "telemetry.keystrokes", "reads": READS, "failed": 1,
             "document_sha256": closed["closed"]["reads_report"]["sha256"]}]
