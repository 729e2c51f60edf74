"""``pausegate runbook validate`` and ``schema``, through the typer sub-app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pausegate.cli.runbook import app, runbook_json_schema
from pausegate.models.runbook import Runbook

runner = CliRunner()
Write = Callable[[str | bytes, str], Path]


def test_validate_valid_file_prints_summary(example_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(example_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{example_path}: valid" in out
    assert "employee-telemetry" in out
    assert "telemetry (telemetry-db: telemetry.{keystrokes,mouse_events})" in out
    assert "db-reads (postgres_log), fleet-audit (fleet)" in out
    assert "6 items" in out
    assert "2 of ciso, cpo, cto" in out


def test_validate_prints_every_problem_and_fails(example_text: str, write_runbook: Write) -> None:
    broken = example_text.replace("  quorum: 2 ", "  quorum: x ").replace(
        "  owner: ml-platform\n", "  owner: ml-platform\n  owner: again\n"
    )
    path = write_runbook(broken, "broken.yaml")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(f"{path}:")]
    assert len(lines) == 2, result.output
    assert any(": program.owner: duplicate key 'owner'" in line for line in lines)
    assert any(": resume_policy.quorum: " in line for line in lines)
    assert "1 of 1 runbook(s) invalid" in result.output


def test_validate_problem_text_is_not_rich_markup(write_runbook: Write) -> None:
    # Paths such as checklist[0] and keys such as [bold] must print literally.
    path = write_runbook("'[bold]': 1\n", "markup.yaml")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f'{path}:1:1: ["[bold]"]: unknown key' in result.output


def test_validate_many_files_reports_each(example_path: Path, write_runbook: Write, tmp_path: Path) -> None:
    bad = write_runbook("- not a mapping\n", "list.yaml")
    missing = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["validate", str(example_path), str(bad), str(missing)])
    assert result.exit_code == 1
    assert f"{example_path}: valid" in result.output
    assert f"{bad}:1:1: (document): a runbook is a mapping of keys, not a list" in result.output
    assert f"{missing}:1:1: (file): no such file" in result.output
    assert "2 of 3 runbook(s) invalid" in result.output


def test_validate_requires_a_file() -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code != 0


def test_schema_prints_json_schema_by_alias() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Runbook"
    assert "apiVersion" in schema["properties"]
    assert "schema" in schema["$defs"]["DatasetSpec"]["properties"]
    assert "schema_name" not in schema["$defs"]["DatasetSpec"]["properties"]
    assert schema["additionalProperties"] is False


def test_schema_output_file(tmp_path: Path) -> None:
    target = tmp_path / "out.schema.json"
    result = runner.invoke(app, ["schema", "--output", str(target)])
    assert result.exit_code == 0
    assert target.read_text(encoding="utf-8") == runbook_json_schema()


def test_committed_schema_is_in_sync(schema_path: Path) -> None:
    # If this fails: pausegate runbook schema --output runbooks/runbook.schema.json
    assert schema_path.read_text(encoding="utf-8") == runbook_json_schema()


def test_schema_matches_model_of_worked_example(example_path: Path) -> None:
    # Every top-level key the worked example uses is one the schema knows about.
    keys = set(yaml.safe_load(example_path.read_text(encoding="utf-8")))
    properties = set(json.loads(runbook_json_schema())["properties"])
    assert keys <= properties
    assert set(Runbook.model_json_schema(by_alias=True)["required"]) <= keys
