"""Sealed payloads copied out of history and sent again are refused, and the refusal is on record.

The attacker holds no key and no codec, only write access to the namespace (anyone on the host of the
embedded stack): a client that sends the bytes it read from one history into another message. Issue 29,
"History payloads can be replayed".
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.updates import CompleteItemInput
from pausegate.temporal import ids
from tests.support.encryption import TEST_CODEC
from tests.support.fault_report import record_result
from tests.support.harness import ANALYST, FAST_TUNING, Harness, HarnessFactory

HISTORIES = Path(__file__).resolve().parents[1] / "histories" / "0.1.0"  # sealed before payloads had addresses
ITEM = "access-review"
REPLAYED_UPDATE = "a reviewer's sealed complete_item copied out of history and sent again by a client with no key"
REPLAYED_START = "a pause's start input copied out of history and sent again by a client with no key"


def without_codec(client: Client) -> Client:
    """What someone with namespace access and no key has: the server, the namespace, no codec."""
    return Client(client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter)


def completion() -> CompleteItemInput:
    return CompleteItemInput(actor=ANALYST, item_id=ITEM, evidence=[
        EvidenceAttachment(name="access-report", uri="https://docs.example.com/access", sha256="ab" * 32)])


def completions_sent(history: WorkflowHistory) -> list[Payload]:
    """The sealed input of every ``complete_item`` the pause accepted, as history stores it."""
    found = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == "complete_item":
                found.append(request.input.args.payloads[0])
    return found


async def replay_update(h: Harness, payload: Payload, name: str = "complete_item") -> None:
    """Send ``payload`` unchanged to the program's open pause under a new update id; a refusal is swallowed
    (the test reads the outcome from the pause)."""
    raw = without_codec(h.client).get_workflow_handle(ids.pause_id(h.client, h.program))
    with contextlib.suppress(WorkflowUpdateFailedError):
        await raw.execute_update(name, RawValue(payload), id=f"replayed-{uuid.uuid4().hex}", result_type=RawValue)


def refusals(status: PauseState, action: str) -> list[str]:
    return [e.detail for e in status.timeline if e.action == action and not e.accepted]


def entries(status: PauseState, action: str) -> int:
    return sum(1 for e in status.timeline if e.action == action)


def item_done(status: PauseState) -> bool:
    return next(i for i in status.checklist if i.id == ITEM).done


async def under_review_with_item_done(h: Harness) -> Payload:
    """Pull the switch, have the analyst complete the access review; the completion's sealed payload."""
    handle, _ = await h.pause()
    await h.wait_for_state(Phase.UNDER_REVIEW)
    await h.act(completion())
    history = await without_codec(h.client).get_workflow_handle(handle.id, run_id=handle.run_id).fetch_history()
    [sealed] = completions_sent(history)
    return sealed


class TestReplayedUpdates:
    async def test_a_reviewers_completion_copied_from_the_programs_closed_pause_is_refused_in_the_open_one(
        self, harness: Harness
    ) -> None:
        h = harness
        copied = await under_review_with_item_done(h)
        await h.client.get_workflow_handle(ids.pause_id(h.client, h.program)).terminate("closed for the test")
        await h.pause()  # the program's next pause: same workflow id, a new chain
        await h.wait_for_state(Phase.UNDER_REVIEW)

        await replay_update(h, copied)

        status = await h.wait_for(lambda s: bool(refusals(s, "refused.complete_item")), timeout=30,
                                  what="the replay refused on the timeline")
        assert not item_done(status), "the access review shows completed by a reviewer who did nothing"
        assert entries(status, "checklist.completed") == 0
        [detail] = refusals(status, "refused.complete_item")
        assert "replayed" in detail and "another pause" in detail and ANALYST.id in detail
        record_result(REPLAYED_UPDATE, "from the program's closed pause into its open one, new update id",
                      injected=1, outcome="refused, on the timeline; the item stays open")

    async def test_a_completion_sent_again_to_the_same_pause_under_a_new_update_id_is_refused(
        self, harness: Harness
    ) -> None:
        h = harness
        copied = await under_review_with_item_done(h)
        before = await h.status()

        await replay_update(h, copied)

        status = await h.wait_for(lambda s: bool(refusals(s, "refused.complete_item")), timeout=30,
                                  what="the replay refused on the timeline")
        assert entries(status, "checklist.amended") == 0
        assert next(i for i in status.checklist if i.id == ITEM) == next(i for i in before.checklist if i.id == ITEM)
        [detail] = refusals(status, "refused.complete_item")
        assert "another update" in detail
        record_result(REPLAYED_UPDATE, "into the same pause under a new update id", injected=1,
                      outcome="refused, on the timeline; the item unchanged")

    async def test_a_completion_copied_into_another_programs_pause_is_rejected_and_that_pause_goes_on(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=20) as first, make_harness(agents=20) as second:
            copied = await under_review_with_item_done(first)
            await second.pause()
            await second.wait_for_state(Phase.UNDER_REVIEW)
            raw = without_codec(second.client).get_workflow_handle(ids.pause_id(second.client, second.program))

            with pytest.raises(WorkflowUpdateFailedError):  # it opens as a payload nothing reads
                await raw.execute_update("complete_item", RawValue(copied), id=f"replayed-{uuid.uuid4().hex}",
                                         result_type=RawValue)

            assert not item_done(await second.status())
            await second.act(completion())  # the pause was not held up: its own reviewer's completion lands
            assert item_done(await second.status())
            record_result(REPLAYED_UPDATE, "into another program's pause", injected=1,
                          outcome="rejected (opens as binary/misaddressed); that pause goes on")

    async def test_an_update_in_the_format_from_before_addresses_is_refused(self, harness: Harness) -> None:
        h = harness
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW)
        old = next(p for p in stored_completions() if json.loads(TEST_CODEC.open(p).data)["item_id"] == ITEM)

        await replay_update(h, old)

        status = await h.wait_for(lambda s: bool(refusals(s, "refused.complete_item")), timeout=30,
                                  what="the old-format update refused on the timeline")
        assert not item_done(status)
        [detail] = refusals(status, "refused.complete_item")
        assert "carries no address" in detail
        record_result(REPLAYED_UPDATE, "in the format from before addresses (a stored history's)", injected=1,
                      outcome="refused, on the timeline; the item stays open")


class TestReplayedStarts:
    async def test_a_start_carrying_an_older_runs_state_is_refused_and_the_pause_starts_over(
        self, make_harness: HarnessFactory
    ) -> None:
        # every update continues the pause as new: the second run's input carries the state
        tuning = FAST_TUNING.model_copy(update={"continue_as_new_after_updates": 1})
        async with make_harness(agents=20, tuning=tuning) as h:
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
            await h.act(completion())
            carried = await h.wait_for(lambda s: s.run_count >= 1 and item_done(s), what="continued as new")
            raw = without_codec(h.client)
            workflow_id = ids.pause_id(h.client, h.program)
            described = await raw.get_workflow_handle(workflow_id).describe()
            started = (await raw.get_workflow_handle(workflow_id, run_id=described.run_id).fetch_history()).events[0]
            [older_input] = started.workflow_execution_started_event_attributes.input.payloads

            await raw.get_workflow_handle(workflow_id).terminate("an insider")
            await raw.start_workflow("PauseWorkflow", RawValue(older_input), id=workflow_id, task_queue=h.task_queue,
                                     id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, result_type=RawValue)

            status = await h.wait_for(lambda s: s.incident_id != carried.incident_id, timeout=30,
                                      what="a new pause, not the older run's state")
            assert status.incident_id != carried.incident_id, "the older run's state was taken"
            assert not item_done(status)
            [detail] = refusals(status, "refused.carried_state")
            assert "continues as new" in detail
            # it starts over: contained again, reviewed again, in the original commander's name
            status = await h.wait_for_state(Phase.UNDER_REVIEW)
            assert status.commander == carried.commander and not item_done(status)
            record_result(REPLAYED_START, "terminated, started again with an older run's carried state",
                          injected=1, outcome="state refused, on the timeline; the pause contains and reviews again")

    async def test_a_start_in_the_format_from_before_addresses_is_refused(self, harness: Harness) -> None:
        h = harness
        old_start = stored_start()
        raw = without_codec(h.client)
        workflow_id = ids.pause_id(h.client, h.program)
        handle = await raw.start_workflow("PauseWorkflow", RawValue(old_start), id=workflow_id,
                                          task_queue=h.task_queue, result_type=RawValue)
        try:
            status = await h.wait_for(lambda s: bool(refusals(s, "refused.start")), timeout=30,
                                      what="the old-format start refused on the record")
            assert status.phase == Phase.ACTIVE and status.containment.agents.halted == 0  # nothing acted on
            [detail] = refusals(status, "refused.start")
            assert "carries no address" in detail
            with pytest.raises(WorkflowFailureError) as failed:
                await h.client.get_workflow_handle(workflow_id).result()
            assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == "replayed"
            record_result(REPLAYED_START, "in the format from before addresses (a stored history's)", injected=1,
                          outcome="refused, on the record; the run fails without acting")
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test done")


def _stored(name: str) -> WorkflowHistory:
    path = HISTORIES / f"{name}.json"
    return WorkflowHistory.from_json((path.with_suffix(".workflow-id")).read_text().strip(), path.read_text())


def stored_completions() -> list[Payload]:
    """Completions sealed before addresses existed, as the stored histories hold them (read, never changed)."""
    return completions_sent(_stored("lifecycle-resumed"))


def stored_start() -> Payload:
    started: Any = _stored("lifecycle-resumed").events[0].workflow_execution_started_event_attributes
    payload: Payload = started.input.payloads[0]
    return payload
