"""A worker started without the history key a pause was sealed with: its workflow tasks fail with an
error naming the key id it lacks (itself sealed, so history gains no plaintext), nothing of the pause is
acted on, and the pause carries on as soon as a worker holding the key runs."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from pausegate.models.phase import Phase
from pausegate.temporal.codec import Keyring, data_converter
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.faults.support import fleet_effects
from tests.support.encryption import TEST_KEY_ID, TEST_KEYRING, fixed_key
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.support.polling import polled
from tests.temporal.test_history_encryption import as_text, without_codec

# A deployment's other key: the worker holds this one only (same identifier key, so it finds the pause).
OTHER = Keyring(keys={"other-1": fixed_key("other-1")}, current="other-1", identifier_key=TEST_KEYRING.identifier_key)


async def test_a_worker_without_the_key_names_it_and_the_pause_goes_on_once_the_key_is_there(
    make_harness: HarnessFactory,
) -> None:
    async with make_harness(run_worker=False, agents=10) as h:
        keyless = Client(h.client.service_client, namespace=h.client.namespace, data_converter=data_converter(OTHER))
        handle, _ = await h.pause()
        raw = without_codec(h.client).get_workflow_handle(handle.id)
        async with build_worker(keyless, h.connectors, task_queue=h.task_queue), \
                build_urgent_worker(keyless, h.connectors):

            async def failures() -> list[HistoryEvent]:
                return [e for e in (await raw.fetch_history()).events
                        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
            failed = await polled(failures, what="the keyless worker's failure recorded")
            # What the keyless worker wrote is sealed with its own key: its operator reads the reason.
            error = await keyless.data_converter.decode_failure(
                failed[0].workflow_task_failed_event_attributes.failure)
            assert f"key id {TEST_KEY_ID!r}" in str(error) and "not configured" in str(error), str(error)
            history = await raw.fetch_history()
            assert h.program not in as_text(history.to_json()), "plaintext of the pause reached history"
            # Nothing was acted on: no activity was scheduled, the fleet saw no command.
            assert not any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.events)
            assert fleet_effects(h).switch_changes == 0

        async with build_worker(h.client, h.connectors, task_queue=h.task_queue), \
                build_urgent_worker(h.client, h.connectors):
            status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.containment.agents.confirmed and status.containment.access_revoked
        assert fleet_effects(h).switch_changes == 1 and fleet_effects(h).max_halts_per_agent <= 1
        record_result("history key missing on a worker", "worker without the key the pause was sealed with",
                      injected=1, outcome=f"workflow task failed naming key id {TEST_KEY_ID!r}, sealed; nothing "
                      "acted on; contained once a worker with the key ran")
