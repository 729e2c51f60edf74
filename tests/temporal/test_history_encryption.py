"""Workflow history on the real dev server holds ciphertext and keyed digests: nobody with namespace access
but without the key reads the incident's story from it; with the key it decodes and replays."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from pausegate.errors import HistoryKeyError
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.people import PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.updates import CompleteItemInput
from pausegate.temporal import ids
from pausegate.temporal.codec import ENCODING, KEY_ID_METADATA, Keyring, data_converter
from pausegate.temporal.pauses import read_status, start_pause
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.api.support import NARROWED_PLAN, REVIEW, ApiWorld, api_world, evidence_for, local
from tests.support.encryption import (
    TEST_CONVERTER,
    TEST_KEY_ID,
    TEST_KEYRING,
    TEST_NAMESPACE,
    decrypted_history_json,
    fixed_key,
)
from tests.support.harness import ANALYST, COMMANDER, Harness, HarnessFactory
from tests.support.pauses import act
from workflows.pause import PauseWorkflow
from workflows.support import ADDRESSED_MESSAGES

REASON = "keystrokes of the whole payroll team readable company-wide"
PEOPLE = ["carol", "ann", "sam", "dave", "pia", "lee", "cleo", "pat"]
ROLES = ["incident-commander", "security-analyst", "security-lead", "data-engineer", "privacy-officer",
         "legal-counsel", "ciso", "cpo"]


def without_codec(client: Client) -> Client:
    """A client of the same server and namespace that holds no key: what a namespace operator has."""
    return Client(client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter)


def as_text(raw: str) -> str:
    """A history's JSON plus every base64 field decoded: all that its reader can read in it.

    The data of encrypted payloads is left out: AES-GCM ciphertext is random bytes (its base64, too),
    where a short name like ``cpo`` turns up by chance; that it is ciphertext is asserted apart."""
    tree = json.loads(raw)
    for node in _payload_nodes(tree):
        if base64.b64decode(node["metadata"]["encoding"]) == ENCODING:
            node.pop("data", None)
    raw = json.dumps(tree)
    parts = [raw]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                if isinstance(value, str):
                    try:
                        parts.append(base64.b64decode(value, validate=True).decode("utf-8", "replace"))
                    except ValueError:
                        pass
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return "\n".join(parts)


def _payload_nodes(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(node)
    return found


_PATCH_EVENTS = ("markerRecordedEventAttributes", "upsertWorkflowSearchAttributesEventAttributes")


def payloads(history: WorkflowHistory) -> list[dict[str, Any]]:
    """The payloads pausegate wrote: all but those a patch adds (``patches``)."""
    events = json.loads(history.to_json())["events"]
    return _payload_nodes([e for e in events if not any(k in e for k in _PATCH_EVENTS)])


def patches(history: WorkflowHistory) -> set[str]:
    """The patch ids a history's markers name. The SDK writes a patch's marker and its search attribute
    (``TemporalChangeVersion``) itself, past the codec: they hold patch ids, names in the workflow code,
    never anything of the incident (``as_text`` still reads them for what must not be there)."""
    markers = [e.marker_recorded_event_attributes for e in history.events
               if e.HasField("marker_recorded_event_attributes")]
    return {json.loads(p.data)["id"] for m in markers for d in m.details.values() for p in d.payloads}


def key_ids(history: WorkflowHistory) -> set[str]:
    return {base64.b64decode(p["metadata"][KEY_ID_METADATA]).decode() for p in payloads(history)}


def update_ids(history: WorkflowHistory) -> list[str]:
    return [e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
            for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]


async def run_full_pause(api: ApiWorld) -> None:
    """The worked example through the API, every action with an Idempotency-Key, one refusal on the way."""
    p = api.program
    started = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": REASON},
                                             headers={"Idempotency-Key": "pull-1"})
    assert started.status_code == 201, started.text
    # pulling the switch again while it is open finds the same pause, by the same keyed id
    again = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "again"})
    assert again.status_code == 200 and again.json()["started"] is False, again.text
    assert again.json()["pause"]["pause_id"] == started.json()["pause"]["pause_id"]
    await api.wait_for_state("UNDER_REVIEW")
    for n, (item, who, name) in enumerate(REVIEW):
        r = await api.client(who).post(f"/v1/pauses/{p}/checklist/{item}",
                                       json={"evidence": [evidence_for(item, name)]},
                                       headers={"Idempotency-Key": f"item-{n}"})
        assert r.status_code == 200, r.text
    proposed = await api.client("carol").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN,
                                              headers={"Idempotency-Key": "plan-1"})
    assert proposed.status_code == 200, proposed.text
    digest = proposed.json()["digest"]
    refused = await api.client("ann").post(f"/v1/pauses/{p}/approvals", json={"digest": digest})
    assert refused.status_code == 403  # its reason (names, roles) goes to the timeline: encrypted too
    for who in ("cleo", "pat"):
        r = await api.client(who).post(f"/v1/pauses/{p}/approvals", json={"digest": digest},
                                       headers={"Idempotency-Key": f"approve-{who}"})
        assert r.status_code == 200, r.text
    await api.wait_for(lambda v: v["state"] == "RESUMED" and v["report"] is not None, timeout=90, what="resumed")


class TestHistoryEncryption:
    async def test_a_full_pause_leaves_no_name_actor_role_reason_dataset_or_evidence_key_in_history(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        async with api_world(harness, tmp_path / "api") as api:
            await run_full_pause(api)
        h = harness
        status = await read_status(h.client, h.program)
        workflow_id = ids.pause_id(h.client, h.program)
        assert status.pause_id == workflow_id == ids.pause_workflow_id(h.program, TEST_KEYRING.identifier_key)
        assert h.program not in workflow_id

        raw_client = without_codec(h.client)
        handle = raw_client.get_workflow_handle(workflow_id)
        history = await handle.fetch_history()
        described = await handle.describe()  # what the UI's list shows: ids, search attributes, memo
        seen = as_text(history.to_json()) + str(described.raw_description)

        forbidden = {
            "program": h.program, "reason": REASON, "dataset": "telemetry", "evidence key": status.evidence_key,
            "incident id": status.incident_id, "evidence URI": "docs.example.com", "plan summary": "Analysts read",
            "local actor prefix": "local:",
            **{f"actor {p}": local(p) for p in PEOPLE}, **{f"role {r}": r for r in ROLES},
        }
        found = {what for what, text in forbidden.items() if text in seen}
        assert not found, f"readable without the key: {sorted(found)}"

        stored = payloads(history)
        assert len(stored) > 20  # the test looked at a real history
        assert ADDRESSED_MESSAGES in patches(history)
        assert {base64.b64decode(p["metadata"]["encoding"]) for p in stored} == {ENCODING}
        assert key_ids(history) == {TEST_KEY_ID}
        uids = update_ids(history)
        assert len(uids) == len(REVIEW) + 3 and all(u.startswith("api-") and len(u) == 36 for u in uids), uids
        activity_ids = [e.activity_task_scheduled_event_attributes.activity_id for e in history.events
                        if e.HasField("activity_task_scheduled_event_attributes")]
        assert activity_ids and all(a.isdigit() for a in activity_ids)

        # With the key, the same history reads as the incident, and replays against the workflow code.
        readable = as_text(decrypted_history_json(history))
        assert h.program in readable and REASON in readable and "local:cleo" in readable
        assert "refused.approve_plan" in readable and "local:ann has security-analyst" in readable
        result = await Replayer(workflows=[PauseWorkflow], data_converter=TEST_CONVERTER,
                                namespace=TEST_NAMESPACE).replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None
        # ...and without the key it does not: no silent plaintext fallback anywhere
        blind = await Replayer(workflows=[PauseWorkflow], data_converter=pydantic_data_converter).replay_workflow(
            history, raise_on_replay_failure=False)
        assert blind.replay_failure is not None

    async def test_after_rotation_old_pauses_read_and_new_payloads_use_the_new_key(
        self, make_harness: HarnessFactory
    ) -> None:
        rotated = Keyring(keys={**TEST_KEYRING.keys, "test-2": fixed_key("test-2")}, current="test-2",
                          identifier_key=TEST_KEYRING.identifier_key)
        async with make_harness(run_worker=False, agents=20) as h:
            before = h.client
            async with build_worker(before, h.connectors, task_queue=h.task_queue), \
                    build_urgent_worker(before, h.connectors):
                await h.pause()
                await h.wait_for_state(Phase.UNDER_REVIEW)
            # every client and worker now holds both keys, the new one current
            after = Client(before.service_client, namespace=before.namespace, data_converter=data_converter(rotated))
            async with build_worker(after, h.connectors, task_queue=h.task_queue), \
                    build_urgent_worker(after, h.connectors):
                assert (await read_status(after, h.program)).phase == Phase.UNDER_REVIEW  # the old pause reads
                item, _, evidence = REVIEW[0]
                await act(after, h.program, CompleteItemInput(actor=ANALYST, item_id=item, evidence=[
                    EvidenceAttachment(name=evidence, uri="https://docs.example.com/a", sha256="ab" * 32)]))
                request = PauseRequest(program=h.program, reason="again", commander=COMMANDER, runbook=h.runbook)
                again, started = await start_pause(after, request, task_queue=h.task_queue)
                assert started is False and again.id == ids.pause_id(before, h.program)  # ids did not rotate

                history = await without_codec(after).get_workflow_handle(again.id).fetch_history()
                assert key_ids(history) == {TEST_KEY_ID, "test-2"}
                accepted = next(e for e in history.events
                                if e.HasField("workflow_execution_update_accepted_event_attributes"))
                update_input = accepted.workflow_execution_update_accepted_event_attributes.accepted_request.input
                assert update_input.args.payloads[0].metadata[KEY_ID_METADATA] == b"test-2"
                started_event = history.events[0].workflow_execution_started_event_attributes
                assert started_event.input.payloads[0].metadata[KEY_ID_METADATA] == TEST_KEY_ID.encode()
                replayer = Replayer(workflows=[PauseWorkflow], data_converter=data_converter(rotated),
                                    namespace=TEST_NAMESPACE)
                result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                assert result.replay_failure is None

                # A client that was not given the new key fails, naming the key it lacks.
                with pytest.raises(HistoryKeyError, match="key id 'test-2'"):
                    await read_status(before, h.program)

    async def test_failure_messages_are_encrypted_too(self, make_harness: HarnessFactory) -> None:
        # Port 1 refuses connections: halting fails with the fleet's address and the program in its error.
        async with make_harness(fleet_url=lambda _: "http://127.0.0.1:1", agents=10) as h:
            handle, _ = await h.pause()
            status = await h.wait_for(lambda s: s.containment.agents.last_error is not None, what="a failed halt")
            assert "127.0.0.1:1" in (status.containment.agents.last_error or "")  # the key holder reads it
            raw = without_codec(h.client).get_workflow_handle(handle.id)

            async def failures_seen() -> str:
                described = await raw.describe()
                return as_text((await raw.fetch_history()).to_json()) + str(described.raw_description)

            seen = await failures_seen()
            deadline = asyncio.get_running_loop().time() + 30
            while "Encoded failure" not in seen:  # a failed attempt is on record (pending activity or event)
                assert asyncio.get_running_loop().time() < deadline, "no failure recorded"
                await asyncio.sleep(0.2)
                seen = await failures_seen()
            assert "127.0.0.1:1" not in seen and h.program not in seen
            await handle.terminate("test done")
