"""Every stored history of every shipped release replays against the current workflow code, and the
stored histories are a corpus that only grows: one directory per release, none ever rewritten."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.support.histories import (
    HISTORY_SUFFIX,
    ROOT,
    VERSION_NAME,
    WORKFLOW_ID_SUFFIX,
    StoredHistory,
    current_version,
    record,
    replay,
    stored_histories,
    versions,
)

HISTORIES = stored_histories()
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class TestCorpus:
    def test_histories_are_stored_only_in_version_directories(self) -> None:
        stray = [p.name for p in ROOT.iterdir() if not (p.is_dir() and VERSION_NAME.fullmatch(p.name))]
        assert stray == [], "tests/histories/ holds one directory per release (tests/histories/<version>/)"
        assert HISTORIES, "tests/histories/<version>/ holds recorded histories (PAUSEGATE_RECORD_HISTORIES=1)"

    def test_every_history_has_its_workflow_id_beside_it(self) -> None:
        for version in versions():
            names = {p.name for p in (ROOT / version).iterdir()}
            stems = {n.removesuffix(HISTORY_SUFFIX) for n in names if n.endswith(HISTORY_SUFFIX)}
            ids = {n.removesuffix(WORKFLOW_ID_SUFFIX) for n in names if n.endswith(WORKFLOW_ID_SUFFIX)}
            assert stems == ids and len(names) == 2 * len(stems), f"tests/histories/{version}/: {sorted(names)}"

    def test_the_package_version_is_the_one_pyproject_declares(self) -> None:
        declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
        assert current_version() == declared

    def test_the_current_release_has_stored_its_own_histories(self) -> None:
        # A release that changed the workflow records its histories before it ships.
        assert current_version() in versions(), (
            f"no tests/histories/{current_version()}/: record this release's histories "
            f"(PAUSEGATE_RECORD_HISTORIES=1 pytest tests/workflows)")
        assert versions()[-1] == current_version(), "no stored release is newer than the package"


class TestRecording:
    def test_a_stored_history_is_never_overwritten(self, tmp_path: Path) -> None:
        history = HISTORIES[0].load()
        written = record(history, "kept", root=tmp_path, version="9.9.9")
        before = written.read_bytes()
        with pytest.raises(FileExistsError, match="never rewritten"):
            record(history, "kept", root=tmp_path, version="9.9.9")
        assert written.read_bytes() == before
        assert [s.label for s in stored_histories(tmp_path)] == ["9.9.9/kept"]
        assert StoredHistory(version="9.9.9", name="kept", root=tmp_path).workflow_id() == history.workflow_id

    def test_a_history_whose_workflow_id_file_is_there_is_not_written_either(self, tmp_path: Path) -> None:
        (tmp_path / "9.9.9").mkdir()
        (tmp_path / "9.9.9" / f"orphan{WORKFLOW_ID_SUFFIX}").write_text("pause/someone-else\n")
        with pytest.raises(FileExistsError, match="never rewritten"):
            record(HISTORIES[0].load(), "orphan", root=tmp_path, version="9.9.9")
        assert not (tmp_path / "9.9.9" / f"orphan{HISTORY_SUFFIX}").exists()
        assert (tmp_path / "9.9.9" / f"orphan{WORKFLOW_ID_SUFFIX}").read_text() == "pause/someone-else\n"

    def test_a_new_release_records_beside_the_older_ones(self, tmp_path: Path) -> None:
        history = HISTORIES[0].load()
        record(history, "kept", root=tmp_path, version="0.10.0")
        record(history, "kept", root=tmp_path, version="0.9.0")
        assert versions(tmp_path) == ["0.9.0", "0.10.0"]


@pytest.mark.parametrize("stored", HISTORIES, ids=[s.label for s in HISTORIES])
async def test_a_stored_history_replays_without_nondeterminism(stored: StoredHistory) -> None:
    await replay(stored.load())
