"""A pause on a namespace whose payload (blob) limit is half the default: no payload the tool sends comes near
it, and an oversized plan, note or runbook is refused at the API with the limit named, before anything
reaches Temporal, never by failing a workflow task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError

from pausegate.models.limits import MAX_NOTE
from pausegate.models.plan import MAX_PLAN_BYTES
from pausegate.runbook.loader import MAX_RUNBOOK_BYTES
from pausegate.temporal.ids import pause_id
from tests.api.support import NARROWED_PLAN, REVIEW, api_world, evidence_for
from tests.faults.limited_server import BLOB_SIZE_ERROR, BLOB_SIZE_WARN, limited_server
from tests.support.fault_report import record_result
from tests.support.harness import pause_harness
from tests.support.polling import polled

WARN, ERROR = 256 * 1024, 1024 * 1024  # the server's defaults are 512 KB and 2 MB
LARGEST_PLAN: dict[str, Any] = {
    **NARROWED_PLAN, "summary": "s" * MAX_NOTE, "conditions": [f"{n:03d}" + "c" * 496 for n in range(50)],
}


def payload_sizes(history: Any) -> list[int]:
    """The size of every payload in a history (what the server holds against the blob limit)."""
    sizes: list[int] = []

    def walk(message: Any) -> None:
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:  # e.g. a header's payloads by name
                items = list(value.values())
            elif hasattr(value, "ListFields"):
                items = [value]
            else:  # a repeated field
                items = list(value)
            for item in items:
                if not hasattr(item, "ListFields"):
                    continue
                if field.message_type.name == "Payload":
                    sizes.append(item.ByteSize())
                else:
                    walk(item)

    for event in history.events:
        walk(event)
    return sizes


@pytest.mark.slow
async def test_under_a_small_blob_limit_payloads_stay_far_below_and_oversized_input_is_refused_at_the_api(
    postgres: tuple[str, Path], tmp_path: Path
) -> None:
    assert MAX_PLAN_BYTES < ERROR // 2, "the largest plan the models accept is near the limit"
    dsn, pglog = postgres
    async with limited_server({BLOB_SIZE_WARN: WARN, BLOB_SIZE_ERROR: ERROR}) as server, \
            pause_harness(server.client, dsn, pglog, tmp_path, agents=10) as h, \
            api_world(h, tmp_path / "api") as api:
        p, carol = api.program, api.client("carol")
        assert (await carol.post("/v1/pauses", json={"program": p, "reason": "r" * 500})).status_code == 201
        await api.wait_for_state("UNDER_REVIEW")
        for item, who, name in REVIEW:
            r = await api.client(who).post(f"/v1/pauses/{p}/checklist/{item}",
                                           json={"evidence": [evidence_for(item, name)], "note": "n" * MAX_NOTE})
            assert r.status_code == 200, r.text

        refused: dict[str, tuple[int, str]] = {}
        for case, path, who, body in [
            ("note one past its limit", f"/v1/pauses/{p}/checklist/access-review", "ann",
             {"evidence": [evidence_for("access-review", "access-report")], "note": "n" * (MAX_NOTE + 1)}),
            ("plan summary one past its limit", f"/v1/pauses/{p}/plan", "carol",
             {**NARROWED_PLAN, "summary": "s" * (MAX_NOTE + 1)}),
            ("plan over its size in bytes", f"/v1/pauses/{p}/plan", "carol",
             {**NARROWED_PLAN, "grants": [{**NARROWED_PLAN["grants"][0], "role": f"r{n}", "columns":
                                           [f"c{m}_{'x' * 40}" for m in range(30)]} for n in range(400)]}),
            ("body over the API's limit", f"/v1/pauses/{p}/plan", "carol", {**NARROWED_PLAN, "summary": "s" * ERROR}),
        ]:
            r = await api.client(who).post(path, json=body)
            refused[case] = (r.status_code, r.text[:300])
        assert refused["note one past its limit"][0] == 422 and str(MAX_NOTE) in refused["note one past its limit"][1]
        assert refused["plan summary one past its limit"][0] == 422
        assert str(MAX_NOTE) in refused["plan summary one past its limit"][1]
        assert refused["plan over its size in bytes"][0] == 422
        assert str(MAX_PLAN_BYTES) in refused["plan over its size in bytes"][1]
        assert refused["body over the API's limit"][0] == 413 and "bytes" in refused["body over the API's limit"][1]

        proposed = await carol.post(f"/v1/pauses/{p}/plan", json=LARGEST_PLAN)
        assert proposed.status_code == 200, proposed.text
        for who in ("cleo", "pat"):
            approved = await api.client(who).post(f"/v1/pauses/{p}/approvals",
                                                  json={"digest": proposed.json()["digest"]})
            assert approved.status_code == 200, approved.text
        await api.wait_for_state("RESUMED")

        # A runbook past its own limit: refused as the API loads it, before any workflow starts.
        runbook = tmp_path / "api" / "runbooks" / f"{p}.yaml"
        runbook.write_text(runbook.read_text() + "\n# " + "x" * MAX_RUNBOOK_BYTES + "\n")

        async def started() -> httpx.Response:
            return await carol.post("/v1/pauses", json={"program": p, "reason": "again"})
        r = await polled(started, until=lambda r: r.status_code != 201, what="the runbook past its limit refused")
        assert r.json()["error"] == "runbook_invalid", r.text

        # The lowered limit is in force (the server ignores a key it does not know): a payload between it and
        # the default is refused.
        with pytest.raises(RPCError, match=r"(?i)size"):
            await h.client.start_workflow("BlobProbe", "x" * (ERROR + ERROR // 2), id=f"probe-{p}",
                                          task_queue="nowhere")

        history = await h.client.get_workflow_handle(pause_id(h.client, p)).fetch_history()
        assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        largest = max(payload_sizes(history))
        assert largest < ERROR // 4, f"a payload of {largest} bytes is near the namespace's {ERROR}"
        record_result("engine limits: small payload (blob) limit", f"blob limit {ERROR // 1024} KB (warn "
                      f"{WARN // 1024} KB); the largest notes and conditions, oversized inputs",
                      injected=len(refused) + 1,
                      outcome="RESUMED; oversized note, plan and body refused at the API naming the limit (422/413), "
                              "an oversized runbook refused as loaded; no workflow task failed",
                      largest_payload_kb=round(largest / 1024))
