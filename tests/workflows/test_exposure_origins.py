"""A pause dates the worked example's exposure from the statement log: the migration's grant to
all_employees and the dashboard author's grant of the view, each with who ran it and when; status, API
view, CLI and report show it; who saw what counts reads against the paths' intervals."""

from __future__ import annotations

import io
from types import SimpleNamespace

import psycopg
from rich.console import Console
from temporalio.testing import ActivityEnvironment

from activities.evidence import EvidenceActivities
from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.api.models import PauseView
from pausegate.cli.views import status as status_view
from pausegate.console.origins import DerivedCause
from pausegate.console.render import build_environment
from pausegate.evidence.anchor import audit_evidence
from pausegate.evidence.report import render_markdown
from pausegate.models.origins import OriginDocument
from pausegate.models.phase import Phase
from pausegate.models.steps import ExposureReportInput, ReportInput
from tests.support.harness import Harness
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_exposure import read_as
from tests.workflows.test_lifecycle import telemetry_rows


def _render(view: PauseView) -> str:
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(status_view(view))
    return out.getvalue()


class TestOriginsOfTheWorkedExample:
    async def test_the_exposure_is_dated_and_its_two_causes_named(self, harness: Harness) -> None:
        h = harness
        read_as(h, "employee_0002", "SELECT count(*) FROM telemetry.keystrokes")
        read_as(h, "employee_0003", "SELECT count(*) FROM analytics.recent_keystrokes")
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        summary = status.containment.origins
        assert summary is not None and summary.readable_since is not None
        assert any(e.action == "containment.origins" for e in status.timeline)
        store = h.connectors.evidence_store
        document = OriginDocument.model_validate(store.read_json(summary.document.key, summary.document.sha256))
        paths = {p.id: p for p in document.paths}

        migration = paths["grant:telemetry.keystrokes:all_employees"]
        opened = migration.intervals[0].opened_by
        assert migration.origin == "logged" and opened is not None
        assert opened.role == "schema_migrations"
        assert opened.statement.startswith("GRANT SELECT ON telemetry.keystrokes")
        dashboard = paths["grant:analytics.recent_keystrokes:all_employees"]
        by = dashboard.intervals[0].opened_by
        assert dashboard.company_wide and by is not None and by.role == "dashboard_author"
        assert migration.intervals[0].opened_at is not None and dashboard.intervals[0].opened_at is not None
        assert migration.intervals[0].opened_at <= dashboard.intervals[0].opened_at
        # both closed by containment's revoke: the exposure ends when access was gone
        assert migration.intervals[-1].closed_at is not None
        assert document.headline is not None and document.headline.role == "schema_migrations"
        assert summary.readable_since == document.headline.since
        assert summary.duration_seconds is not None and summary.duration_seconds > 0
        # the lines read for the origins are sealed and named by the record: the evidence holds against it
        assert [log.source for log in summary.logs] == ["db-reads"]
        audit = audit_evidence(store.root, status, record="the pause",  # type: ignore[attr-defined]
                               pinned=[store.signing_key_sha256])  # type: ignore[attr-defined]
        assert audit.ok, [line.model_dump() for line in audit.problems]

        # who saw what counted the reads made while the paths were open
        assert status.containment.exposure is not None
        report = WhoSawWhat.model_validate(store.read_json(status.containment.exposure.report.key))
        assert {"employee_0002", "employee_0003"} <= set(report.users)
        assert all(e.outside == 0 for e in report.entries if e.user.startswith("employee_"))

        # the faces: the status line, the paths and the derived cause beside the checklist (with --scope)
        shown = _render(PauseView.of(status, reveal=True, origins=document.model_dump(mode="json")))
        assert "company-wide since" in shown and "Derived cause (statement log)" in shown
        assert "schema_migrations" in shown and "dashboard_author" in shown
        page = build_environment().get_template("_origins.html").render(
            view=PauseView.of(status, reveal=True), seen=SimpleNamespace(cause=DerivedCause(document.headline)))
        assert 'data-fact="readable-since">since <time' in page and "opened in the statement log" in page
        assert '<span data-fact="origin-role">schema_migrations</span>' in page
        hidden = PauseView.of(status, reveal=False)
        assert hidden.containment.origins is None and hidden.origins is None
        markdown = render_markdown(ReportInput(pause_key=status.evidence_key, status=status, origins=document))
        assert "## How the data became readable" in markdown and "Readable company-wide since" in markdown
        await replay_and_maybe_record(h.client.get_workflow_handle(status.pause_id), "exposure-origins")

    async def test_data_subjects_are_counted_while_a_path_was_open(self, harness: Harness) -> None:
        """People are counted up to the last moment a path was open, by the same intervals: with every path
        closed before the fleet wrote a row, nobody's rows were readable."""
        h = harness
        await h.eventually(lambda: telemetry_rows(h.database_dsn)[0] > 0, what="telemetry rows")
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.containment.origins is not None and status.containment.exposure is not None
        assert status.containment.exposure.data_subjects  # the pause counted people, by the origins' intervals
        store = h.connectors.evidence_store
        ref = status.containment.origins.document
        document = OriginDocument.model_validate(store.read_json(ref.key, ref.sha256))
        with psycopg.connect(h.database_dsn) as conn:
            row = conn.execute("SELECT min(captured_at) FROM telemetry.keystrokes").fetchone()
        assert row is not None and row[0] is not None
        closed = document.model_copy(update={"until": row[0] - (row[0] - document.oldest_line) / 2})
        key = f"{status.evidence_key}-closed-early"
        origins = store.put_json(f"{key}/origins/document", closed.model_dump(mode="json"))
        acts = EvidenceActivities(store, h.connectors.audit_source, h.connectors.access)
        bundles = [e.bundle.key for e in status.containment.evidence if e.source == "db-reads"]
        summary = await ActivityEnvironment().run(acts.exposure_report, ExposureReportInput(
            pause_key=key, bundles=bundles, datasets=list(h.runbook.datasets),
            window_end=status.containment.access_gone_at, origins=origins))
        assert summary.data_subjects == 0
