"""The runbook's canary: a canary is only a canary. The loader refuses one that overlaps a dataset of the
program or gives a canary reader break-glass, saying where."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pausegate.errors import RunbookError
from pausegate.runbook.loader import parse_runbook

Edit = Callable[[str, str], str]

CANARY_SCHEMA = "  schema: telemetry_canary       # the whole schema: every table in it is a canary\n"


def problems(text: str) -> list[str]:
    with pytest.raises(RunbookError) as info:
        parse_runbook(text, "rb.yaml")
    return info.value.problems


class TestCanary:
    def test_the_worked_examples_canary_loads(self, example_text: str) -> None:
        canary = parse_runbook(example_text).canary
        assert canary is not None and canary.agents == ["agent-00001", "agent-00002", "agent-00003"]
        assert canary.dataset().name == "canary" and canary.dataset().break_glass_roles == []

    def test_a_canary_in_the_schema_of_a_dataset_is_refused(self, edit_example: Edit) -> None:
        found = problems(edit_example(CANARY_SCHEMA, "  schema: telemetry\n  tables: [keystrokes]\n"))
        assert any("canary overlaps dataset 'telemetry' (keystrokes)" in p for p in found), found

    def test_a_whole_schema_canary_over_a_datasets_schema_is_refused(self, edit_example: Edit) -> None:
        found = problems(edit_example(CANARY_SCHEMA, "  schema: telemetry\n"))
        assert any("canary overlaps dataset 'telemetry' (schema telemetry)" in p for p in found), found

    def test_a_canary_table_beside_a_datasets_tables_in_one_schema_loads(self, edit_example: Edit) -> None:
        canary = parse_runbook(edit_example(CANARY_SCHEMA, "  schema: telemetry\n  tables: [canary_rows]\n")).canary
        assert canary is not None and canary.tables == ["canary_rows"]

    def test_a_break_glass_role_as_canary_reader_is_refused(self, edit_example: Edit) -> None:
        found = problems(edit_example("  readers: [telemetry_canary_reader]\n",
                                      "  readers: [security_breakglass]\n"))
        assert any("break-glass roles of dataset 'telemetry': security_breakglass" in p for p in found), found

    def test_a_reader_both_canary_and_watched_is_refused(self, edit_example: Edit) -> None:
        found = problems(edit_example("  readers: [telemetry_canary_reader]\n", "  readers: [ml_trainer]\n"))
        assert any("cannot be both canary and watched readers" in p for p in found), found

    def test_agents_must_be_listed_once_and_few(self, edit_example: Edit) -> None:
        agents = "  agents: [agent-00001, agent-00002, agent-00003]\n"
        assert any("must not repeat" in p for p in problems(edit_example(agents, "  agents: [a-1, a-1]\n")))
        many = "  agents: [" + ", ".join(f"a-{n}" for n in range(101)) + "]\n"
        assert any("canary.agents" in p for p in problems(edit_example(agents, many)))
