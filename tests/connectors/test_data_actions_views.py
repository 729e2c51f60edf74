"""Data actions as approvers meet them: the example plan, the CLI, the console, redaction, the plan digest."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from pausegate.api.redaction import REDACTED_SUBJECT, redact_state
from pausegate.canonical import canonical_json, sha256_hex
from pausegate.cli import views
from pausegate.console.bridge import Refusal
from pausegate.console.render import build_environment
from pausegate.models.data_actions import NullColumn, PurgeSubjects
from pausegate.models.digests import plan_digest
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.plan import PlanRecord, ResumePlan
from pausegate.policy.transitions import new_pause
from pausegate.runbook.loader import load_runbook

ROOT = Path(__file__).parents[2]
EXAMPLE_PLAN = ROOT / "examples" / "resume-plan.yaml"
NULL = NullColumn(dataset="telemetry", table="keystrokes", column="typed_content")
PURGE = PurgeSubjects(
    dataset="telemetry", table="keystrokes", subject_column="employee", subjects=["employee_0003", "employee_0007"]
)
LINE = "DESTRUCTIVE: null telemetry.keystrokes.typed_content in every row (cannot be undone)"


def example_plan() -> ResumePlan:
    return ResumePlan.model_validate(yaml.safe_load(EXAMPLE_PLAN.read_text()))


def test_the_example_plan_nulls_typed_content_of_the_example_tables() -> None:
    plan = example_plan()
    assert plan.data_actions == [NULL]
    runbook = load_runbook(ROOT / "runbooks" / "employee-telemetry.yaml")
    dataset = next(d for d in runbook.datasets if d.name == NULL.dataset)
    assert NULL.table in dataset.tables
    assert "typed_content text" in (ROOT / "pausegate/reference/example/telemetry.sql").read_text()


def test_a_plan_without_data_actions_keeps_its_digest_and_one_with_them_gets_another() -> None:
    bare = ResumePlan(summary="s")
    before = sha256_hex(canonical_json({"agents": bare.agents.model_dump(mode="json"), "grants": [],
                                        "conditions": [], "summary": "s"}))
    assert plan_digest(bare) == before
    assert plan_digest(bare.model_copy(update={"data_actions": [NULL]})) != before
    assert plan_digest(ResumePlan(data_actions=[NULL])) != plan_digest(ResumePlan(data_actions=[PURGE]))


def test_the_cli_shows_each_action_as_destructive() -> None:
    plan = ResumePlan(data_actions=[NULL, PURGE])
    shown = views.data_actions(plan)
    assert shown is not None
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(shown)
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "Data actions (2, run once before access returns):",
        f"  0. {LINE}",
        "  1. DESTRUCTIVE: delete rows of telemetry.keystrokes about 2 subjects (by employee) (cannot be undone)",
    ]
    assert views.data_actions(ResumePlan()) is None


def test_the_console_plan_view_shows_each_action_as_destructive_and_escapes_it() -> None:
    template = build_environment().get_template("_data_actions.html")
    html = template.render(plan=ResumePlan(data_actions=[NULL]))
    assert (
        '<strong class="destructive">DESTRUCTIVE:</strong> null telemetry.keystrokes.typed_content in every row'
    ) in html
    assert "(cannot be undone)" in html
    assert 'data-kind="null_column"' in html
    assert "None: the data already collected" in template.render(plan=ResumePlan())


def test_people_without_a_review_role_see_how_many_subjects_a_purge_deletes_not_who() -> None:
    runbook = load_runbook(ROOT / "runbooks" / "employee-telemetry.yaml")
    request = PauseRequest(program=runbook.program.id, reason="r", runbook=runbook,
                           commander=Actor(id="local:cmd", roles=["incident-commander"]))
    state = new_pause(f"pause/{runbook.program.id}", request, datetime(2026, 11, 30, tzinfo=UTC), "x")
    plan = ResumePlan(data_actions=[NULL, PURGE])
    record = PlanRecord(plan=plan, plan_digest=plan_digest(plan), proposed_by="local:sam",
                        proposed_at=datetime(2026, 11, 30, tzinfo=UTC))
    redacted = redact_state(state.model_copy(update={"plan": record}))
    assert redacted.plan is not None
    actions = redacted.plan.plan.data_actions
    assert actions[0] == NULL
    assert isinstance(actions[1], PurgeSubjects)
    assert actions[1].subjects == [REDACTED_SUBJECT, REDACTED_SUBJECT]
    assert actions[1].describe() == PURGE.describe()
    assert "employee_0003" not in redacted.model_dump_json()


def test_console_lines_round_trip_every_kind_and_bad_lines_say_why() -> None:
    from pausegate.console.data_action_lines import data_action_line, parse_data_action
    from pausegate.console.forms import Form, plan_from
    from pausegate.models.data_actions import DropColumn, PseudonymiseColumn, PurgeOlderThan

    actions = [
        NULL, PURGE,
        DropColumn(dataset="telemetry", table="keystrokes", column="window_title"),
        PseudonymiseColumn(dataset="telemetry", table="keystrokes", column="employee", key_id="tel-2026"),
        PurgeOlderThan(dataset="telemetry", table="keystrokes", column="captured_at",
                       cutoff=datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    for action in actions:
        assert parse_data_action(data_action_line(action)) == action
    assert data_action_line(NULL) == "telemetry null keystrokes typed_content"

    plan = plan_from(Form([("data_actions", "# nulls the typed text\ntelemetry null keystrokes typed_content\n")]))
    assert plan.data_actions == [NULL]
    with pytest.raises(Refusal) as refused:
        plan_from(Form([("data_actions", "telemetry null keystrokes\ntelemetry purge-before keystrokes c 2026-01-01")]))
    problems = refused.value.problems
    assert problems[0].startswith("data actions line 1: expected DATASET null|drop")
    assert problems[1].startswith("data actions line 2: ") and "timezone" in problems[1].lower()


def test_the_whole_plan_page_shows_the_actions_and_prefills_them_for_a_new_proposal() -> None:
    from pausegate.console.bridge import Seen, view_of
    from pausegate.console.routes.plan import plan_context

    runbook = load_runbook(ROOT / "runbooks" / "employee-telemetry.yaml")
    lead = Actor(id="local:sam", roles=["security-lead"])
    request = PauseRequest(program=runbook.program.id, reason="r", runbook=runbook,
                           commander=Actor(id="local:cmd", roles=["incident-commander"]))
    state = new_pause(f"pause/{runbook.program.id}", request, datetime(2026, 11, 30, tzinfo=UTC), "x")
    plan = example_plan()
    record = PlanRecord(plan=plan, plan_digest=plan_digest(plan), proposed_by=lead.id,
                        proposed_at=datetime(2026, 11, 30, tzinfo=UTC))
    view = view_of(state.model_copy(update={"plan": record}), runbook, lead)
    seen = Seen(program=runbook.program.id, runbook=runbook, actor=lead, view=view)
    context = plan_context(seen)
    html = build_environment().get_template("plan.html").render(
        visitor=None, csrf="", flashes=[], idempotency_key="k", refusal=None, posted_to=None, posted={}, **context
    )
    assert ('<strong class="destructive">DESTRUCTIVE:</strong> null telemetry.keystrokes.typed_content '
            "in every row") in html
    assert context["prefill"]["data_actions"] == "telemetry null keystrokes typed_content"
