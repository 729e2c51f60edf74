"""Every stored history of a shipped workflow version replays against the current workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.support.encryption import TEST_CONVERTER, TEST_NAMESPACE
from workflows.pause import PauseWorkflow

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_histories_are_stored() -> None:
    assert HISTORIES, "tests/histories/ holds recorded histories (PAUSEGATE_RECORD_HISTORIES=1 pytest ...)"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_stored_history_replays_without_nondeterminism(path: Path) -> None:
    text = path.read_text()  # noqa: ASYNC240 - a small local file
    # A history whose commands depend on its workflow id (the watch's id is derived from it) is stored
    # with that id beside it.
    id_file = path.with_suffix(".workflow-id")
    workflow_id = id_file.read_text().strip() if id_file.exists() else f"pause/{path.stem}"
    history = WorkflowHistory.from_json(workflow_id, text)
    result = await Replayer(workflows=[PauseWorkflow], data_converter=TEST_CONVERTER, namespace=TEST_NAMESPACE
                            ).replay_workflow(
        history, raise_on_replay_failure=True
    )
    assert result.replay_failure is None
