"""Fixtures for runbook tests: the worked example and a way to write variants of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "runbooks" / "employee-telemetry.yaml"
SCHEMA = REPO / "runbooks" / "runbook.schema.json"


@pytest.fixture(scope="session")
def example_path() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def schema_path() -> Path:
    return SCHEMA


@pytest.fixture(scope="session")
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture
def edit_example(example_text: str) -> Callable[[str, str], str]:
    """The example with one exact snippet replaced; fails loudly if the snippet is gone."""

    def edit(old: str, new: str) -> str:
        assert example_text.count(old) == 1, f"snippet not found exactly once: {old!r}"
        return example_text.replace(old, new)

    return edit


@pytest.fixture
def write_runbook(tmp_path: Path) -> Callable[[str | bytes, str], Path]:
    def write(content: str | bytes, name: str = "runbook.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write
