"""The runbook loader: the worked example loads; every kind of mistake is located, all at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from pausegate.errors import RunbookError
from pausegate.models.runbook import Runbook
from pausegate.runbook.loader import MAX_DEPTH, MAX_RUNBOOK_BYTES, load_runbook, parse_runbook

PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<msg>.+)$", re.S)

Edit = Callable[[str, str], str]


def where(text: str, snippet: str, within: str | None = None) -> str:
    """``LINE:COL`` (1-based) of ``snippet`` in ``text``, after ``within`` if given."""
    start = text.index(within) if within else 0
    index = text.index(snippet, start)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def problems_of(text: str | bytes, source: str = "rb.yaml") -> list[str]:
    with pytest.raises(RunbookError) as info:
        parse_runbook(text, source)
    problems = info.value.problems
    assert problems, "a RunbookError must carry at least one problem"
    for problem in problems:
        assert PROBLEM.match(problem), f"not FILE:LINE:COL: path: message: {problem!r}"
        assert problem.startswith(f"{source}:")
    return problems


# The worked example ---------------------------------------------------------------------------


def test_worked_example_loads(example_path: Path) -> None:
    runbook = load_runbook(example_path)
    assert isinstance(runbook, Runbook)
    assert runbook.program.id == "employee-telemetry"
    assert runbook.fleet.connection == "telemetry-fleet"
    [dataset] = runbook.datasets
    assert (dataset.name, dataset.connection, dataset.schema_name) == (
        "telemetry",
        "telemetry-db",
        "telemetry",
    )
    assert dataset.tables == ["keystrokes", "mouse_events"]
    assert dataset.break_glass_roles == ["security_breakglass"]
    assert [(a.name, a.kind, a.connection) for a in runbook.audit_sources] == [
        ("db-reads", "postgres_log", "telemetry-db"),
        ("fleet-audit", "fleet", "telemetry-fleet"),
    ]
    assert runbook.roles.commander == ["incident-commander"]
    policy = runbook.resume_policy
    assert policy.approver_roles == ["ciso", "cpo", "cto"] and policy.quorum == 2
    assert policy.proposer_roles == ["incident-commander", "security-lead"]
    assert policy.separation_of_duties.commander_cannot_approve
    assert policy.allowed_grantee_roles == ["telemetry_analysts", "telemetry_ingest"]
    assert [(n.name, n.connection) for n in runbook.notifications] == [("security-channel", "slack-security")]


def test_worked_example_checklist(example_path: Path) -> None:
    runbook = load_runbook(example_path)
    evidence = {e for item in runbook.checklist for e in item.evidence}
    assert evidence == {
        "access-report",
        "root-cause-analysis",
        "access-design",
        "data-minimisation-decision",
        "employee-notice",
        "legal-opinion",
    }
    by_evidence = {item.evidence[0]: item for item in runbook.checklist}
    access, root = by_evidence["access-report"], by_evidence["root-cause-analysis"]
    assert root.depends_on == [access.id]
    assert by_evidence["access-design"].depends_on == [root.id]
    legal = by_evidence["legal-opinion"]
    assert set(legal.depends_on) == {i.id for i in runbook.checklist} - {legal.id}
    assert all(item.due is not None and item.due >= timedelta(days=1) for item in runbook.checklist)
    assert all(item.roles for item in runbook.checklist)


def test_worked_example_names_no_secrets(example_text: str) -> None:
    content = [line.split("#", 1)[0] for line in example_text.splitlines()]
    assert not [line for line in content if "://" in line or "@" in line]
    assert not [line for line in content if re.search(r"(?i)\b(password|token|secret|url|dsn)\s*:", line)]


def test_parse_accepts_bytes_with_bom(example_text: str) -> None:
    runbook = parse_runbook(b"\xef\xbb\xbf" + example_text.encode(), "bom.yaml")
    assert runbook.program.id == "employee-telemetry"


# Field errors ---------------------------------------------------------------------------------


def test_missing_field_points_at_its_item(example_text: str, edit_example: Edit) -> None:
    text = edit_example("    roles: [privacy-officer]\n", "")
    [problem] = problems_of(text)
    item_index = example_text[: example_text.index("id: employee-notice")].count("  - id: ")
    assert problem == (
        f"rb.yaml:{where(text, 'id: employee-notice')}: checklist[{item_index}].roles: Field required"
    )


def test_unknown_key_is_located_and_suggests(edit_example: Edit) -> None:
    text = edit_example("  owner: ml-platform\n", "  owner: ml-platform\n  ownr: ml\n")
    [problem] = problems_of(text)
    assert problem.startswith(f"rb.yaml:{where(text, 'ownr:')}: program.ownr: unknown key")
    assert "did you mean 'owner'" in problem


def test_wrong_type_points_at_the_value(edit_example: Edit) -> None:
    text = edit_example("  quorum: 2 ", "  quorum: two ")
    [problem] = problems_of(text)
    assert problem.startswith(f"rb.yaml:{where(text, 'two', within='quorum: two')}: resume_policy.quorum: ")
    assert "integer" in problem


def test_bad_duration_is_located(edit_example: Edit) -> None:
    text = edit_example("    due: P2D\n", "    due: two days\n")
    [problem] = problems_of(text)
    assert problem.startswith(f"rb.yaml:{where(text, 'two days', within='due: two')}: checklist[0].due: ")


def test_schema_alias_is_the_yaml_key(edit_example: Edit) -> None:
    text = edit_example("    schema: telemetry ", "    schema: Telemetry ")
    [problem] = problems_of(text)
    assert f":{where(text, 'Telemetry')}: datasets[0].schema: String should match pattern" in problem


def test_every_problem_is_reported(edit_example: Edit, example_text: str) -> None:
    text = (
        example_text.replace("  owner: ml-platform\n", "  owner: ml-platform\n  colour: red\n")
        .replace("  quorum: 2 ", "  quorum: x ")
        .replace("    due: P2D\n", "    due: soon\n")
        .replace("    roles: [privacy-officer]\n", "")
    )
    problems = problems_of(text)
    paths = [PROBLEM.match(p).group("path") for p in problems]  # type: ignore[union-attr]
    assert set(paths) == {"program.colour", "resume_policy.quorum", "checklist[0].due", "checklist[4].roles"}
    lines = [int(PROBLEM.match(p).group("line")) for p in problems]  # type: ignore[union-attr]
    assert lines == sorted(lines), "problems are listed in file order"


def test_model_validator_error_points_at_the_model_key(edit_example: Edit) -> None:
    text = edit_example("  quorum: 2 ", "  quorum: 4 ")
    [problem] = problems_of(text)
    assert problem.startswith(
        f"rb.yaml:{where(text, 'quorum: 4')}: resume_policy.quorum: quorum 4 cannot be met"
    )


def test_audit_source_without_connection(edit_example: Edit) -> None:
    text = edit_example("    kind: fleet\n    connection: telemetry-fleet\n", "    kind: fleet\n")
    [problem] = problems_of(text)
    assert f":{where(text, 'kind: fleet')}: audit_sources[1].kind: " in problem
    assert "needs a connection" in problem


# Model-level problems ------------------------------------------------------------------------


def test_dependency_cycle_points_at_depends_on(edit_example: Edit) -> None:
    text = edit_example(
        "    evidence: [access-report]\n",
        "    depends_on: [legal-privacy-review]\n    evidence: [access-report]\n",
    )
    [problem] = problems_of(text)
    assert problem.startswith(
        f"rb.yaml:{where(text, 'depends_on: [legal-privacy-review]')}: checklist[0].depends_on: "
    )
    assert "cycle: access-review -> legal-privacy-review -> access-review" in problem


def test_unknown_dependency_points_at_the_entry(edit_example: Edit) -> None:
    text = edit_example("    depends_on: [access-review]\n", "    depends_on: [acess-review]\n")
    [problem] = problems_of(text)
    assert problem == (
        f"rb.yaml:{where(text, 'acess-review')}: checklist[1].depends_on[0]: "
        "checklist item 'root-cause' depends on unknown item 'acess-review'"
    )


def test_self_dependency(edit_example: Edit) -> None:
    text = edit_example("    depends_on: [access-review]\n", "    depends_on: [root-cause]\n")
    problems = problems_of(text)
    assert any(
        "checklist[1].depends_on[0]: checklist item 'root-cause' depends on itself" in p for p in problems
    )


def test_repeated_item_id(edit_example: Edit) -> None:
    text = edit_example("  - id: data-minimisation\n", "  - id: root-cause\n")
    problems = problems_of(text)
    second = where(text, "root-cause", within="id: root-cause\n    title: Drop")
    assert f"rb.yaml:{second}: checklist[3].id: checklist item 'root-cause' is defined twice" in problems


def test_dependency_problems_reported_alongside_field_errors(example_text: str) -> None:
    # The model checks dependencies only once every field is valid; the loader does not wait.
    text = example_text.replace("  quorum: 2 ", "  quorum: x ").replace(
        "    depends_on: [access-review]\n", "    depends_on: [missing]\n"
    )
    problems = problems_of(text)
    assert any("resume_policy.quorum" in p for p in problems)
    assert any("depends on unknown item 'missing'" in p for p in problems)


def test_long_dependency_chain_is_not_a_recursion_error() -> None:
    def item(n: int) -> str:
        depends = f", depends_on: [i{n + 1}]" if n < 2999 else ""
        return f"  - {{id: i{n}, title: t, roles: [r]{depends}}}"

    items = "\n".join(item(n) for n in range(3000))
    text = (
        "program: {id: p, name: P}\nfleet: {connection: f}\n"
        "datasets: [{name: d, connection: c, schema: s}]\n"
        "resume_policy: {approver_roles: [a], quorum: 1, proposer_roles: [a]}\n"
        f"checklist:\n{items}\n"
    )
    assert len(parse_runbook(text, "chain.yaml").checklist) == 3000
    cyclic = text.replace(
        "  - {id: i2999, title: t, roles: [r]}", "  - {id: i2999, title: t, roles: [r], depends_on: [i0]}"
    )
    [problem] = problems_of(cyclic)
    assert "checklist dependencies form a cycle: i0 -> i1" in problem


# YAML-level problems -------------------------------------------------------------------------


def test_duplicate_key_is_an_error(edit_example: Edit) -> None:
    text = edit_example("  owner: ml-platform\n", "  owner: ml-platform\n  owner: someone-else\n")
    [problem] = problems_of(text)
    first = where(text, "owner: ml-platform").split(":")[0]
    assert problem.startswith(
        f"rb.yaml:{where(text, 'owner: someone-else')}: program.owner: duplicate key 'owner'"
    )
    assert f"first defined at line {first}" in problem


def test_duplicate_top_level_key(example_text: str) -> None:
    problems = problems_of(example_text + "\nfleet:\n  connection: other-fleet\n")
    assert any("fleet: duplicate key 'fleet'" in p for p in problems)


def test_syntax_error_is_located(edit_example: Edit) -> None:
    text = edit_example("  quorum: 2 ", "  quorum: [2 ")
    [problem] = problems_of(text)
    assert ": (yaml): " in problem
    assert int(PROBLEM.match(problem).group("line")) >= int(where(text, "quorum: [2").split(":")[0])  # type: ignore[union-attr]


def test_tab_indentation_is_located() -> None:
    [problem] = problems_of("program:\n\tid: x\n")
    assert problem.startswith("rb.yaml:2:") and "(yaml)" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "rb.yaml:1:1: (document): the file is empty"),
        ("# only a comment\n", "rb.yaml:1:1: (document): the file is empty"),
        ("- a\n- b\n", "rb.yaml:1:1: (document): a runbook is a mapping of keys, not a list"),
        ("just text\n", "rb.yaml:1:1: (document): a runbook is a mapping of keys, not a single value"),
        ("a: 1\n---\nb: 2\n", "rb.yaml:2:1: (yaml): expected a single document"),
    ],
)
def test_not_a_mapping(text: str, expected: str) -> None:
    [problem] = problems_of(text)
    assert problem.startswith(expected)


def test_aliases_are_refused_without_expansion() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    problems = problems_of("\n".join(lines) + "\n")
    alias_problems = [p for p in problems if "aliases (*name) are not allowed" in p]
    assert len(alias_problems) == 81
    assert alias_problems[0].startswith("rb.yaml:2:")


def test_alias_in_a_field_reports_only_the_alias(edit_example: Edit, example_text: str) -> None:
    text = example_text.replace(
        "    roles: [privacy-officer]\n", "    roles: &privacy [privacy-officer]\n"
    ).replace("    roles: [legal-counsel, privacy-officer]\n", "    roles: *privacy\n")
    [problem] = problems_of(text)
    assert (
        problem == f"rb.yaml:{where(text, '*privacy')}: (yaml): aliases (*name) are not allowed in a runbook"
    )


def test_merge_keys_are_refused() -> None:
    problems = problems_of("program:\n  <<: {id: x, name: y}\n")
    assert any(p.startswith("rb.yaml:2:3: program: merge keys (<<) are not supported") for p in problems)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!custom", "!!binary", "!!set"])
def test_tags_beyond_plain_data_are_refused(edit_example: Edit, tag: str) -> None:
    text = edit_example("  quorum: 2 ", f"  quorum: {tag} 2 ")
    [problem] = problems_of(text)
    assert "resume_policy.quorum: unsupported tag" in problem


def test_non_string_keys_are_refused() -> None:
    problems = problems_of("? [a, b]\n: 1\n")
    assert any("(document): keys must be plain strings" in p for p in problems)


def test_yaml_1_1_booleans_stay_keys() -> None:
    problems = problems_of("program: {id: p, name: P}\non: 1\n")
    assert any(p.startswith("rb.yaml:2:1: on: unknown key") for p in problems)


def test_deep_nesting_is_refused() -> None:
    [problem] = problems_of("a: " + "[" * (MAX_DEPTH * 100))
    assert "(yaml): nested more than" in problem


def test_huge_integer_is_located(edit_example: Edit) -> None:
    text = edit_example("  quorum: 2 ", "  quorum: " + "9" * 5000 + " ")
    [problem] = problems_of(text)
    assert problem.startswith(f"rb.yaml:{where(text, '9999')}: resume_policy.quorum: not a valid value")


# The file itself -----------------------------------------------------------------------------


def test_too_large_file_is_refused(write_runbook: Callable[[str | bytes, str], Path]) -> None:
    path = write_runbook("a: " + "x" * MAX_RUNBOOK_BYTES + "\n", "big.yaml")
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:1:1: (file): ") and "larger than" in problem


def test_too_large_text_is_refused() -> None:
    [problem] = problems_of("#" * (MAX_RUNBOOK_BYTES + 1))
    assert "larger than" in problem


def test_binary_file_is_refused(write_runbook: Callable[[str | bytes, str], Path]) -> None:
    path = write_runbook(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.yaml")
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:3:1: (file): binary data (NUL byte at offset 8)")


def test_non_utf8_is_located() -> None:
    [problem] = problems_of("program:\n  name: caf\xe9\n".encode("latin-1"))
    assert problem.startswith("rb.yaml:2:12: (file): not UTF-8 text")


def test_control_character_is_located() -> None:
    [problem] = problems_of("program:\n  name: a\x07b\n")
    assert problem.startswith("rb.yaml:2:10: (yaml): character U+0007")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RunbookError) as info:
        load_runbook(tmp_path / "nope.yaml")
    assert info.value.problems == [f"{tmp_path / 'nope.yaml'}:1:1: (file): no such file"]


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(RunbookError) as info:
        load_runbook(tmp_path)
    assert "is a directory" in info.value.problems[0]


def test_error_message_lists_all_problems() -> None:
    with pytest.raises(RunbookError) as info:
        parse_runbook("a: 1\nb: 2\n", "x.yaml")
    assert str(info.value) == "\n".join(info.value.problems)
    assert len(info.value.problems) == 7  # five required sections missing, two unknown keys


def test_the_worked_example_names_what_its_agents_write(example_path: Path) -> None:
    writes = load_runbook(example_path).fleet.writes
    assert writes is not None
    assert (writes.dataset, writes.tables, writes.written_at) == ("telemetry", ["keystrokes", "mouse_events"],
                                                                  "captured_at")


def test_writes_naming_an_unknown_dataset_points_at_it(edit_example: Edit) -> None:
    text = edit_example("    dataset: telemetry\n", "    dataset: telemetri\n")
    [problem] = problems_of(text)
    assert problem == (f"rb.yaml:{where(text, 'dataset: telemetri')}: fleet.writes.dataset: "
                       "fleet.writes names unknown dataset 'telemetri'")


def test_writes_column_must_be_a_plain_identifier(edit_example: Edit) -> None:
    text = edit_example("    written_at: captured_at\n", "    written_at: captured_at; drop table x\n")
    [problem] = problems_of(text)
    assert "fleet.writes.written_at" in problem
