"""The data-action activities through a real Temporal worker: check, apply twice, verify; refusals fail
the activity without retry; the pseudonym key never enters the workflow's history."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.data_actions import DataActionActivities
from pausegate.config import Settings
from pausegate.connectors.postgres.data_actions import hmac_pads
from pausegate.connectors.registry import Connectors
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.base import Model
from pausegate.models.data_actions import (
    ApplyDataActionInput,
    CheckDataActionsInput,
    DataAction,
    DataActionResult,
    DataActionsCheck,
    NullColumn,
    PseudonymiseColumn,
    VerifyDataActionsInput,
)
from pausegate.models.runbook import DatasetSpec
from tests.connectors.data_actions_support import KEY, TELEMETRY, seed_rows
from tests.support.encryption import decrypted_history_json

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Database

ROWS = 200
PAUSE = "employee-telemetry/activities"
OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(maximum_attempts=3, non_retryable_error_types=["TargetRejectedError", "ConfigError"]),
}


class Probe(Model):
    dataset: DatasetSpec
    actions: list[DataAction]


class ProbeOutcome(Model):
    problems: list[str]
    results: list[DataActionResult]
    check: DataActionsCheck


@workflow.defn(sandboxed=False)
class DataActionsProbe:
    """What the pause workflow does with a plan's data actions: check, apply each (twice here), verify."""

    @workflow.run
    async def run(self, probe: Probe) -> ProbeOutcome:
        problems = await workflow.execute_activity_method(
            DataActionActivities.check_data_actions,
            CheckDataActionsInput(dataset=probe.dataset, actions=probe.actions),
            **OPTIONS,
        )
        results: list[DataActionResult] = []
        for _ in range(2):
            for index, action in enumerate(probe.actions):
                results.append(await workflow.execute_activity_method(
                    DataActionActivities.apply_data_action,
                    ApplyDataActionInput(pause_key=PAUSE, dataset=probe.dataset, index=index, action=action),
                    **OPTIONS,
                ))
        check = await workflow.execute_activity_method(
            DataActionActivities.verify_data_actions,
            VerifyDataActionsInput(pause_key=PAUSE, dataset=probe.dataset, actions=probe.actions),
            **OPTIONS,
        )
        return ProbeOutcome(problems=problems, results=results, check=check)


def settings_for(dsn: str) -> Settings:
    return Settings.model_validate({
        "connections": {"telemetry-db": {"kind": "postgres", "dsn": dsn}},
        "pseudonym_keys": {"tel-2026": {"secret": KEY}},
    })


async def run_probe(client: Client, dsn: str, actions: list[Any], tmp_path: Path) -> tuple[ProbeOutcome, str]:
    queue = f"data-actions-{uuid.uuid4().hex}"
    settings = settings_for(dsn)
    connectors = Connectors(settings, evidence_store=open_evidence_store(settings.evidence.model_copy(
        update={"directory": tmp_path / "evidence"})))
    activities = DataActionActivities(connectors.data_actions)
    async with Worker(
        client, task_queue=queue, workflows=[DataActionsProbe], workflow_runner=UnsandboxedWorkflowRunner(),
        activities=[activities.check_data_actions, activities.apply_data_action, activities.verify_data_actions],
    ):
        handle = await client.start_workflow(
            DataActionsProbe.run, Probe(dataset=TELEMETRY, actions=actions), id=queue, task_queue=queue
        )
        try:
            outcome = await handle.result()
        finally:
            history = await handle.fetch_history()
    # Decrypted, so the search below reads what any key holder (an operator with the codec) would read.
    return outcome, _payload_text(json.loads(decrypted_history_json(history)))


def _payload_text(node: Any) -> str:
    """Every payload of the history decoded (they are stored base64-encoded), one after another."""
    if isinstance(node, dict):
        parts = [_payload_text(v) for k, v in node.items() if k != "data"]
        if isinstance(node.get("data"), str):
            parts.append(base64.b64decode(node["data"]).decode("utf-8", errors="replace"))
        return "\n".join(parts)
    if isinstance(node, list):
        return "\n".join(_payload_text(v) for v in node)
    return ""


async def test_check_apply_twice_verify_through_a_worker(
    temporal_client: Client, database: Database, tmp_path: Path
) -> None:
    seed_rows(database.dsn, ROWS)
    actions: list[Any] = [
        NullColumn(dataset="telemetry", table="keystrokes", column="window_title"),
        PseudonymiseColumn(dataset="telemetry", table="keystrokes", column="typed_content", key_id="tel-2026"),
    ]
    outcome, history = await run_probe(temporal_client, database.dsn, actions, tmp_path)

    assert outcome.problems == []
    assert [(r.index, r.applied_now, r.rows_affected) for r in outcome.results] == [
        (0, True, ROWS), (1, True, ROWS - ROWS // 5), (0, False, ROWS), (1, False, ROWS - ROWS // 5),
    ]
    assert outcome.check.ok, outcome.check.problems
    inner, outer = hmac_pads(KEY.encode())
    for secret in (KEY, inner.hex(), outer.hex(), database.dsn):
        assert secret not in history
    assert '"key_id":"tel-2026"' in history  # the key id is the record of which key was used
    assert '"rows_affected":160' in history


async def test_a_refused_action_fails_without_retry_and_says_why(
    temporal_client: Client, database: Database, tmp_path: Path
) -> None:
    seed_rows(database.dsn, ROWS)
    bad = NullColumn(dataset="telemetry", table="keystrokes", column="id")
    with pytest.raises(WorkflowFailureError) as failed:
        await run_probe(temporal_client, database.dsn, [bad], tmp_path)
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "TargetRejectedError" and cause.cause.non_retryable
    assert "telemetry.keystrokes.id is part of the primary key" in str(cause.cause)
