"""Validation patterns match whole strings: Python's ``re.match(r"...$")`` also accepts a trailing newline,
so every check uses ``fullmatch``; pydantic's ``pattern=`` (Rust regex) reads ``$`` as the end of the text."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pausegate.api.errors import ApiError
from pausegate.cli.review import parse_evidence
from pausegate.models.access import GrantSpec
from pausegate.models.runbook import DatasetSpec, Program
from tests.api.support import ApiWorld, write_runbook


class TestProgramPath:
    async def test_a_program_id_with_a_trailing_newline_is_unknown(self, api: ApiWorld) -> None:
        # A runbook file whose name ends in a newline: a check that accepts "id\n" would read it.
        runbooks = api.settings.api.runbooks_dir
        (runbooks / f"{api.program}.yaml").rename(runbooks / f"{api.program}\n.yaml")
        state = api.app.state.api
        with pytest.raises(ApiError) as refused:
            state.runbook(f"{api.program}\n")
        assert refused.value.status == 404 and "no runbook" not in refused.value.detail
        assert f"{api.program}\n" not in state.programs()
        r = await api.client("carol").get(f"/v1/pauses/{api.program}%0A")
        assert r.status_code == 404 and r.json()["error"] == "unknown_program"
        write_runbook(api.harness, runbooks)
        assert (await api.client("carol").get(f"/v1/pauses/{api.program}")).json()["error"] == "no_pause"


class TestModels:
    def test_identifiers_checked_in_code_refuse_a_trailing_newline(self) -> None:
        with pytest.raises(ValidationError):
            DatasetSpec(name="telemetry", connection="db", schema="telemetry", break_glass_roles=["responder\n"])
        with pytest.raises(ValidationError):
            GrantSpec(dataset="telemetry", role="analysts", table="keystrokes", privileges=["SELECT"],
                      columns=["id\n"])
        assert DatasetSpec(name="t", connection="db", schema="s", break_glass_roles=["responder"]).break_glass_roles

    def test_pydantic_patterns_refuse_a_trailing_newline_too(self) -> None:
        with pytest.raises(ValidationError):
            Program(id="telemetry\n", name="x")
        with pytest.raises(ValidationError):
            GrantSpec(dataset="telemetry", role="analysts\n", table="keystrokes", privileges=["SELECT"])

    def test_a_digest_with_a_trailing_newline_is_not_a_digest(self, tmp_path: Path) -> None:
        digest = "ab" * 32
        assert parse_evidence([f"report=https://x/y@{digest}"])[0]["sha256"] == digest
        assert "sha256" not in parse_evidence([f"report=https://x/y@{digest}\n"])[0]
