"""The release corpus: workflow histories stored per package version, replayed by every later version.

``tests/histories/<version>/`` holds the histories recorded with that release's workflow code, each as
``<name>.json`` with ``<name>.workflow-id`` beside it (the codec binds payloads to their workflow id, and
the watch's id is derived from the pause's). A release that changes the workflow bumps the package version
and records into a directory of its own; a stored file is never rewritten, because a history regenerated
on new code no longer stands for the runs that were open when that code was deployed.

Histories are recorded by running the real-stack tests with ``PAUSEGATE_RECORD_HISTORIES=1``; they are
encrypted with the fixed test keyring of ``tests/support/encryption.py``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import pausegate
from tests.support.encryption import TEST_CONVERTER, TEST_NAMESPACE
from workflows.break_glass import BreakGlassWorkflow
from workflows.drill import DrillWorkflow
from workflows.pause import PauseWorkflow
from workflows.watch import WatchWorkflow

ROOT = Path(__file__).resolve().parents[1] / "histories"
RECORD_ENV = "PAUSEGATE_RECORD_HISTORIES"
# Every workflow type a stored history may be of: a replay picks the type the history names.
WORKFLOWS: list[type] = [PauseWorkflow, WatchWorkflow, BreakGlassWorkflow, DrillWorkflow]
VERSION_NAME = re.compile(r"\d+\.\d+\.\d+")
HISTORY_SUFFIX = ".json"
WORKFLOW_ID_SUFFIX = ".workflow-id"


def current_version() -> str:
    """The package version being built: the directory this code's histories are recorded into."""
    return pausegate.__version__


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def versions(root: Path = ROOT) -> list[str]:
    """The versions with stored histories, oldest first."""
    return sorted((p.name for p in root.iterdir() if p.is_dir() and VERSION_NAME.fullmatch(p.name)),
                  key=version_key)


@dataclass(frozen=True)
class StoredHistory:
    """One stored history: the release that recorded it and its name within that release."""

    version: str
    name: str
    root: Path = ROOT

    @property
    def path(self) -> Path:
        return self.root / self.version / f"{self.name}{HISTORY_SUFFIX}"

    @property
    def label(self) -> str:
        return f"{self.version}/{self.name}"

    def workflow_id(self) -> str:
        return (self.root / self.version / f"{self.name}{WORKFLOW_ID_SUFFIX}").read_text().strip()

    def load(self) -> WorkflowHistory:
        return WorkflowHistory.from_json(self.workflow_id(), self.path.read_text())


def stored_histories(root: Path = ROOT) -> list[StoredHistory]:
    """Every stored history of every version, oldest version first."""
    return [StoredHistory(version=v, name=p.name.removesuffix(HISTORY_SUFFIX), root=root)
            for v in versions(root) for p in sorted((root / v).glob(f"*{HISTORY_SUFFIX}"))]


def stored(version: str, name: str) -> WorkflowHistory:
    """The history ``name`` as release ``version`` recorded it."""
    return StoredHistory(version=version, name=name).load()


def record(history: WorkflowHistory, name: str, *, root: Path = ROOT, version: str | None = None) -> Path:
    """Store ``history`` as ``<root>/<version>/<name>.json`` with its workflow id beside it.

    Refuses (``FileExistsError``) when either file is already there: a stored history is never rewritten.
    Files are created exclusively, so two recorders racing for a name cannot both win.
    """
    directory = root / (version or current_version())
    json_path = directory / f"{name}{HISTORY_SUFFIX}"
    id_path = directory / f"{name}{WORKFLOW_ID_SUFFIX}"
    for path in (json_path, id_path):
        if path.exists():
            raise FileExistsError(
                f"{path} exists: a stored history is never rewritten; a workflow change bumps the package "
                f"version (now {directory.name}) and records into tests/histories/<new version>/")
    directory.mkdir(parents=True, exist_ok=True)
    with id_path.open("x") as f:
        f.write(history.workflow_id + "\n")
    with json_path.open("x") as f:
        f.write(history.to_json())
    return json_path


async def replay(history: WorkflowHistory, **replayer: Any) -> None:
    """Replay ``history`` against the current workflow code; nondeterminism raises."""
    result = await Replayer(workflows=WORKFLOWS, data_converter=TEST_CONVERTER, namespace=TEST_NAMESPACE,
                            **replayer).replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def replay_and_maybe_record(handle: Any, name: str) -> None:
    """The run's history replays against the current code; with PAUSEGATE_RECORD_HISTORIES set it is kept
    under tests/histories/<version>/ so every later version of the workflow must replay it too."""
    history = await handle.fetch_history()
    await replay(history)
    if os.environ.get(RECORD_ENV):
        record(history, name)
