"""Who saw what: the employees who read the telemetry in the exposure window, by which path, derived
from the database's own log lines sealed as evidence; and whose data was readable."""

from __future__ import annotations

import json
import stat
from datetime import datetime

import psycopg
from temporalio.testing import ActivityEnvironment

from activities.evidence import EvidenceActivities
from pausegate.analysis.pglog_lines import original_line
from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.evidence.layout import data_subjects_key
from pausegate.evidence.verify import verify_bundle
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.steps import ExposureReportInput
from pausegate.reference.example.browsing import browse_once, browsers
from tests.support.harness import Harness, HarnessFactory
from tests.workflows.test_lifecycle import readable_history

# dozens of empty comments before a parenthesis: the regex that classified statements tried every
# way of splitting them into comments (2^40) before failing, and the worker stalled on it
STALLING = "/**/" * 40 + "(SELECT * FROM telemetry.keystrokes)"


def read_as(h: Harness, role: str, *statements: str) -> None:
    with psycopg.connect(h.dsn_as(role), autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            if cur.description is not None:  # a query: its rows are read, as a reader would
                cur.fetchall()


def report_of(h: Harness, status: PauseState) -> WhoSawWhat:
    assert status.containment.exposure is not None
    return WhoSawWhat.model_validate(h.connectors.evidence_store.read_json(status.containment.exposure.report.key))


def sealed_lines(h: Harness, status: PauseState) -> list[bytes]:
    store = h.connectors.evidence_store
    return [original_line(r) or b"" for e in status.containment.evidence if e.source == "db-reads"
            for r in store.iter_bundle(e.bundle.key)]


class TestWhoSawWhat:
    async def test_the_report_names_exactly_the_employees_who_read_the_data(self, harness: Harness) -> None:
        h = harness
        read_as(h, "employee_0002", "SELECT count(*) FROM telemetry.keystrokes")
        read_as(h, "employee_0004", "SELECT count(*) FROM telemetry.keystrokes", "SELECT * FROM telemetry.mouse_events",
                "SELECT x FROM telemetry.mouse_events")
        # the convenience view in another schema, found by name through search_path
        read_as(h, "employee_0005", "SET search_path TO analytics", "SELECT * FROM recent_keystrokes")
        read_as(h, "employee_0001", "SELECT 'telemetry.keystrokes'", "SELECT 1")  # names it, reads nothing

        handle, _ = await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        report = report_of(h, status)
        employees = {u for u in report.users if u.startswith("employee_")}
        assert employees == {"employee_0002", "employee_0004", "employee_0005"}
        reads = {(e.user, e.object, e.path): e.reads for e in report.entries if e.user.startswith("employee_")}
        assert reads == {
            ("employee_0002", "telemetry.keystrokes", "direct"): 1,
            ("employee_0004", "telemetry.keystrokes", "direct"): 1,
            ("employee_0004", "telemetry.mouse_events", "direct"): 2,
            ("employee_0005", "telemetry.keystrokes", "through analytics.recent_keystrokes"): 1,
        }
        exposure = status.containment.exposure
        assert exposure is not None and exposure.readers == len(report.users)
        for entry in report.for_user("employee_0004"):
            assert entry.first_at is not None and entry.first_at <= status.started_at

        # A read refused after containment is not exposure, and the sealed bundles verify offline.
        try:
            read_as(h, "employee_0003", "SELECT count(*) FROM telemetry.keystrokes")
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("employee_0003 could still read after containment")
        store = h.connectors.evidence_store
        for sealed in status.containment.evidence:
            path = store.bundle_path(sealed.bundle.key)  # type: ignore[attr-defined]
            assert verify_bundle(path, store.public_key_path).ok  # type: ignore[attr-defined]
        # the workflow's history holds counts and digests: no reader, no statement
        history = readable_history(await handle.fetch_history())
        for text in ("employee_0002", "employee_0005", "recent_keystrokes", "SELECT count(*)"):
            assert text not in history, text

    async def test_the_examples_browsing_employees_are_named_with_their_paths(self, harness: Harness) -> None:
        h = harness
        assert all(browse_once(h.dsn_as, 5).values())  # the leaky grants let them read
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        report = report_of(h, status)
        expected = set()
        for role, statement in browsers(5):
            via = "analytics.recent_keystrokes" if "analytics." in statement else None
            table = "telemetry.mouse_events" if "mouse_events" in statement else "telemetry.keystrokes"
            expected.add((role, table, f"through {via}" if via else "direct"))
        assert {(e.user, e.object, e.path) for e in report.entries if e.user.startswith("employee_")} == expected
        # after the pause they are refused, as they should be
        assert not any(browse_once(h.dsn_as, 5).values())

    async def test_whose_data_was_readable_is_counted_and_kept_owner_only(self, harness: Harness) -> None:
        h = harness
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.containment.contained_at is not None
        until: datetime = status.containment.contained_at
        bundles = [e.bundle.key for e in status.containment.evidence if e.source == "db-reads"]
        # the datasets (with their data-subject column) as the workflow passes them to the activity
        acts = EvidenceActivities(h.connectors.evidence_store, h.connectors.audit_source, h.connectors.access)
        summary = await ActivityEnvironment().run(acts.exposure_report, ExposureReportInput(
            pause_key=status.evidence_key, bundles=bundles, datasets=list(h.runbook.datasets), window_end=until))
        with psycopg.connect(h.database_dsn) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT employee) FROM (SELECT employee, captured_at FROM telemetry.keystrokes "
                "UNION ALL SELECT employee, captured_at FROM telemetry.mouse_events) t WHERE captured_at < %s",
                (until,)).fetchone()
        assert row is not None and row[0] > 0, "the fleet wrote telemetry before the pause"
        assert summary.data_subjects == row[0]
        ref = summary.data_subjects_list
        assert ref is not None and ref.key == data_subjects_key(status.evidence_key)
        store = h.connectors.evidence_store
        document = store.read_json(ref.key)
        assert document["count"] == row[0] == len(document["subjects"])
        assert all(s.startswith("employee_") for s in document["subjects"])
        path = store.document_path(ref.key)  # type: ignore[attr-defined]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # names people: owner-only
        # the summary the workflow keeps names nobody: a count and a digest
        assert not any(s in summary.model_dump_json() for s in document["subjects"])


class TestContainmentIsNotStalled:
    async def test_a_statement_crafted_to_stall_a_parser_costs_containment_nothing(
        self, make_harness: HarnessFactory
    ) -> None:
        # The analyser's work on such a statement is counted, and bounded, in
        # tests/connectors/test_statement_reads.py; here the pause is contained with it in the log, and the
        # reader who sent it is named from a parse of it, not skipped as unreadable.
        async with make_harness() as h:
            read_as(h, "employee_0002", "SELECT count(*) FROM telemetry.keystrokes")
            read_as(h, "employee_0003", STALLING)
            await h.pause()
            # the timeout only keeps a stalled worker from hanging the test
            status = await h.wait_for(lambda s: s.containment.contained_at is not None, timeout=120,
                                      what="containment")
        assert status.containment.exposure is not None and status.containment.exposure.unparsed == 0
        # and the statement is in the sealed evidence, as the server logged it
        lines = [json.loads(line) for line in sealed_lines(h, status)]
        assert any(e.get("message") == f"statement: {STALLING}" and e.get("user") == "employee_0003" for e in lines)
        report = report_of(h, status)
        assert ("employee_0003", "direct") in {(e.user, e.path) for e in report.entries}


class TestWholeSchema:
    async def test_a_whole_schema_dataset_is_contained_and_its_readers_named(self, harness: Harness) -> None:
        h = harness
        datasets = [d.model_copy(update={"tables": []}) for d in h.runbook.datasets]
        h.runbook = h.runbook.model_copy(update={"datasets": datasets})
        read_as(h, "employee_0002", "SET search_path TO telemetry", "SELECT count(*) FROM keystrokes")
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.containment.contained_at is not None and all(d.verified for d in status.containment.datasets)
        assert {e.source for e in status.containment.evidence} == {"db-reads", "fleet-audit"}
        report = report_of(h, status)
        assert ("employee_0002", "telemetry.keystrokes", "direct") in {(e.user, e.object, e.path)
                                                                        for e in report.entries}
