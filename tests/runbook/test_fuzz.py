"""Whatever the input, the loader returns a Runbook or raises a RunbookError with located problems."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausegate.errors import RunbookError
from pausegate.models.runbook import Runbook
from pausegate.runbook.loader import parse_runbook

PROBLEM = re.compile(r"^fuzz\.yaml:[1-9]\d*:[1-9]\d*: \S.*?: .+", re.S)
EXAMPLE_TEXT = (Path(__file__).resolve().parents[2] / "runbooks" / "employee-telemetry.yaml").read_text(
    "utf-8"
)
EXAMPLE_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE_TEXT)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(text: str | bytes) -> None:
    try:
        runbook = parse_runbook(text, "fuzz.yaml")
    except RunbookError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), problem
        return
    assert isinstance(runbook, Runbook)


# Mutations of the worked example's text: the kind of damage editing does.
yaml_ish = st.sampled_from(
    [
        ":",
        "- ",
        "  ",
        "\t",
        "\n",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a",
        "!!str ",
        "!x ",
        "<<: ",
        "#",
        "'",
        '"',
        "---\n",
        "...\n",
        "? ",
        "|\n",
        ">-\n",
        "null",
        "~",
        "yes",
        "0x1F",
        "1e400",
        "P2D",
        "\x00",
        "\x07",
        "\ufeff",
    ]
)


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    text = EXAMPLE_TEXT
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate_line", "swap_lines"]))
        if op == "insert":
            text = text[:at] + draw(st.one_of(yaml_ish, st.text(max_size=8))) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "replace":
            text = text[:at] + draw(yaml_ish) + text[at + draw(st.integers(1, 5)) :]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "duplicate_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    return text


@FUZZ
@given(mutated_example())
def test_mutated_example(text: str) -> None:
    check(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["P2D", "pausegate/v1", "webhook", "fleet", "postgres_log", "telemetry"]),
)
structures = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(structures)
def test_random_structures(data: Any) -> None:
    check(yaml.safe_dump(data, allow_unicode=True))


@st.composite
def damaged_example_data(draw: st.DrawFn) -> Any:
    """The example's data with one value somewhere replaced by a random structure."""
    data: Any = yaml.safe_load(EXAMPLE_TEXT)
    node = data
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
        if not isinstance(node[key], dict | list) or draw(st.booleans()):
            node[key] = draw(structures)
            break
        node = node[key]
    else:
        if isinstance(node, dict):
            node[draw(st.text(max_size=12))] = draw(structures)
    return data


@FUZZ
@given(damaged_example_data())
def test_damaged_example_structure(data: Any) -> None:
    check(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def test_unmodified_example_is_valid() -> None:
    # The mutation tests start from a valid runbook; make sure they do.
    assert parse_runbook(EXAMPLE_TEXT, "fuzz.yaml").program.id == EXAMPLE_DATA["program"]["id"]
