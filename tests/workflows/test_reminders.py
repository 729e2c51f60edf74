"""Overdue checklist items send reminders, driven by workflow timers (days pass in seconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.phase import Phase
from pausegate.models.updates import CompleteItemInput
from pausegate.temporal.client import temporal_cli
from tests.support.encryption import TEST_CONVERTER
from tests.support.harness import ANALYST, pause_harness


@pytest_asyncio.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=temporal_cli(),
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
        data_converter=TEST_CONVERTER,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


class TestReminders:
    async def test_items_past_due_are_reminded_once_and_completed_items_never(
        self, skipping_env: WorkflowEnvironment, postgres: tuple[str, Path], tmp_path: Path
    ) -> None:
        dsn, pglog = postgres
        async with pause_harness(skipping_env.client, dsn, pglog, tmp_path, agents=10) as h:
            await h.pause()
            await h.wait_for_state(Phase.UNDER_REVIEW)
            await h.act(CompleteItemInput(actor=ANALYST, item_id="access-review", evidence=[
                EvidenceAttachment(name="access-report", uri="https://docs.example.com/access")]))
            # The last item is due after 14 days; with time skipping they all come due in seconds.
            status = await h.wait_for(
                lambda s: sum(e.action == "checklist.overdue" for e in s.timeline) >= 5, what="5 reminders"
            )
            overdue = [e.detail.split(" ")[0] for e in status.timeline if e.action == "checklist.overdue"]
            assert sorted(overdue) == sorted(
                ["root-cause", "narrowed-access", "data-minimisation", "employee-notice", "legal-privacy-review"]
            )
            assert all(i.reminded for i in status.checklist if i.id != "access-review")
            await h.eventually(
                lambda: sum("overdue" in m.text for m in h.chat.sink.received("security")) >= 5,
                what="reminders delivered to the chat webhook",
            )
            assert status.phase == Phase.UNDER_REVIEW
