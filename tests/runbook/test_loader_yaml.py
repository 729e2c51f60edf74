"""What the loader relies on ruamel.yaml for, and the two places where it corrects what ruamel reports."""

from __future__ import annotations

import pytest

from pausegate.errors import RunbookError
from pausegate.runbook.loader import parse_runbook


def problems_of(text: str) -> list[str]:
    with pytest.raises(RunbookError) as info:
        parse_runbook(text, "rb.yaml")
    return info.value.problems


def test_an_empty_value_is_located_after_its_colon_not_at_the_next_token() -> None:
    # ruamel marks an empty value where the next token ends: here three lines further down.
    problems = problems_of("program:\n  id: p\n  name:\n\n\n  owner: o\n")
    assert "rb.yaml:3:8: program.name: Input should be a valid string" in problems


def test_content_after_a_top_level_scalar_reads_as_before() -> None:
    # ruamel words this "but found ('<block mapping start>',)"; the loader keeps the plain wording.
    [problem] = problems_of('"x"\nb: 2\n')
    assert problem == "rb.yaml:2:1: (yaml): expected '<document start>', but found '<block mapping start>'"


def test_plain_scalars_resolve_by_yaml_1_2() -> None:
    # YAML 1.1 (PyYAML) read `no` as false and `1:30` as 90; by 1.2 both are text.
    problems = problems_of("program: {id: p, name: no, owner: 1:30}\n")
    assert not [p for p in problems if p.startswith("rb.yaml:1:") and "program." in p]


def test_an_alias_is_refused_without_being_resolved_even_when_its_anchor_is_missing() -> None:
    problems = problems_of("program: {id: *nowhere, name: n}\n")
    assert "rb.yaml:1:15: (yaml): aliases (*name) are not allowed in a runbook" in problems
