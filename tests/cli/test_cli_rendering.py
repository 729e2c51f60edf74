"""The CLI without the stack: how commands are registered, how help reads, how API text is shown."""

from __future__ import annotations

import inspect
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.testing import CliRunner

from pausegate.api.models import PauseView
from pausegate.cli import output, views
from pausegate.cli.main import app
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.data_stop import DataStop
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.phase import Phase
from pausegate.models.plan import Approval, PlanRecord, ResumePlan
from pausegate.models.state import TimelineEntry
from pausegate.policy.transitions import new_pause
from pausegate.runbook.loader import load_runbook
from tests.cli.hostile import CLEAR, OSC8_LINK, hostile, shown, without_styles

EXAMPLE_RUNBOOK = Path(__file__).parents[2] / "runbooks" / "employee-telemetry.yaml"
COMMANDS = {
    "up", "worker", "api", "pause", "waive", "status", "pauses", "report", "checklist", "complete", "plan",
    "retry-step", "waive-step", "data-subjects",
    "reject", "approve", "decommission", "refusals", "runbook validate", "runbook schema", "evidence verify",
    "evidence audit", "evidence records", "evidence download", "users add", "users list", "users roles",
    "users remove", "users log",
    "watch status", "watch withdraw-consent",
    "break-glass request", "break-glass approve", "break-glass end", "break-glass list",
    "drill", "drill-status", "drill-stop", "drill-schedule",
    "keys enroll", "keys confirm", "keys list", "keys remove", "evidence verify-approvals",
}


def _commands(group: TyperGroup, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        found[f"{prefix}{name}"] = command
        if isinstance(command, TyperGroup):
            found.update(_commands(command, f"{prefix}{name} "))
    return found


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, TyperGroup)
ALL = _commands(ROOT)


class TestCommands:
    def test_every_command_is_registered_under_its_name(self) -> None:
        leaves = {path for path, command in ALL.items() if not isinstance(command, TyperGroup)}
        assert leaves == COMMANDS

    @pytest.mark.parametrize("path", sorted(ALL))
    def test_every_help_text_is_whole_paragraphs(self, path: str) -> None:
        # Typer's rich help keeps a docstring's line breaks: "the reference\nfleet" printed broken in two.
        command = ALL[path]
        texts = [inspect.cleandoc(command.help or ""), command.epilog or ""]
        texts += [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            for paragraph in text.split("\n\n"):
                assert "\n" not in paragraph, f"{path}: {paragraph!r}"

    @pytest.mark.parametrize("group", ["", "runbook", "evidence", "users", "watch"])
    def test_each_listing_shows_every_summary_on_one_line(self, group: str) -> None:
        args = [group, "--help"] if group else ["--help"]
        result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        prefix = f"{group} " if group else ""
        listed = [p for p in ALL if p.startswith(prefix) and " " not in p.removeprefix(prefix)]
        assert listed
        for path in listed:
            summary = inspect.cleandoc(ALL[path].help or "").split("\n\n")[0]
            assert summary and summary in result.output, path


class TestClean:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("\x1b[2J", "\\x1b[2J"),
            ("a\rb", "a\\x0db"),
            ("bell\x07", "bell\\x07"),
            ("\x9b2J", "\\x9b2J"),  # the 8-bit CSI
            ("\x7f", "\\x7f"),
            ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
            ("line\nnext\tcolumn", "line\nnext\tcolumn"),
            ("[bold]é ✓ 漢字", "[bold]é ✓ 漢字"),
        ],
    )
    def test_control_characters_are_shown_not_obeyed(self, raw: str, expected: str) -> None:
        assert output.clean(raw) == expected

    def test_the_consoles_take_strings_as_text(self) -> None:
        # Even a string printed on the console directly, past line() and cell(), is not read as markup or emoji.
        buffer = io.StringIO()
        printer = output.Output()
        printer.console.file = buffer
        printer.console.print("[bold red]x[/] [link=https://evil.example]click[/link] :warning:")
        printer.say("[/oops] ", ("[/]", "green"))
        assert buffer.getvalue() == "[bold red]x[/] [link=https://evil.example]click[/link] :warning:\n[/oops] [/]\n"


def _hostile_view() -> PauseView:
    """A pause whose every person-written field carries markup and a clear-screen sequence."""
    runbook = load_runbook(EXAMPLE_RUNBOOK)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    request = PauseRequest(
        program=runbook.program.id, reason=hostile("reason"), commander=Actor(id=hostile("commander")),
        runbook=runbook,
    )
    state = new_pause("pause-1", request, now, "abc123")
    state.phase = Phase.AWAITING_APPROVAL
    item = state.checklist[0]
    item.completed_by = hostile("reviewer")
    item.completed_at = now
    item.evidence = [EvidenceAttachment(name=hostile("evidence"), uri="https://docs.example.com/x")]
    item.note = hostile("note")
    state.plan = PlanRecord(
        plan=ResumePlan(summary=hostile("summary")), plan_digest="ab" * 32, proposed_by=hostile("proposer"),
        proposed_at=now,
    )
    state.approvals = [Approval(actor_id=hostile("approver"), role="ciso", digest="cd" * 32, at=now)]
    state.containment.errors = [hostile("error")]
    state.timeline = [
        TimelineEntry(at=now, actor=hostile("actor"), action="plan.rejected", detail=hostile("rejection")),
        TimelineEntry(at=now, actor="ann", action=hostile("action"), detail=hostile("refusal"), accepted=False),
    ]
    # Through JSON and back, as the CLI reads it; as a reviewer sees it (nothing redacted).
    return PauseView.model_validate(PauseView.of(state, reveal=True).model_dump(mode="json"))


class TestStatusRendering:
    def test_api_text_prints_literally_even_on_a_console_that_reads_markup(self) -> None:
        view = _hostile_view()
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=True, color_system="truecolor", width=1000, markup=True)
        console.print(views.status(view))
        printed = buffer.getvalue()
        assert OSC8_LINK not in printed and CLEAR not in printed
        text = without_styles(printed)
        assert "\x1b" not in text
        for tag in ("reason", "commander", "reviewer", "summary", "proposer", "approver", "error", "actor",
                    "rejection", "action", "refusal"):
            assert shown(tag) in text, tag


class TestDataStopRendering:
    def _view(self, rows_after: int) -> PauseView:
        runbook = load_runbook(EXAMPLE_RUNBOOK)
        now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        state = new_pause("pause-1", PauseRequest(program=runbook.program.id, reason="leak",
                                                  commander=Actor(id="carol"), runbook=runbook), now, "abc123")
        off = datetime(2026, 3, 1, 12, 0, 1, 250_000, tzinfo=UTC)
        state.containment.agents.switch_off = True
        state.containment.agents.switch_off_at = off
        state.containment.data_stop = DataStop(
            switch_off_at=off, checked_at=datetime(2026, 3, 1, 12, 0, 3, tzinfo=UTC), rows_after=rows_after,
            last_row_at=off + timedelta(seconds=2) if rows_after else None,
            last_row_before=off - timedelta(milliseconds=400))
        return PauseView.model_validate(PauseView.of(state, reveal=True).model_dump(mode="json"))

    def printed(self, view: PauseView) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=200).print(views.status(view))
        return buffer.getvalue()

    def test_status_shows_when_the_switch_went_off_and_that_no_row_came_after(self) -> None:
        text = self.printed(self._view(0))
        assert "Data stopped" in text and "switch off at 2026-03-01 12:00:01.250 UTC" in text
        assert "no rows after the halt" in text and "last row 0.40 s before it" in text

    def test_status_shows_rows_collected_after_the_switch(self) -> None:
        text = self.printed(self._view(3))
        assert "3 rows after it, the last 2.00 s after the switch went off" in text
        assert "no rows after the halt" not in text
