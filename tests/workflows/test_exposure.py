"""Who saw what: the employees who read the telemetry in the exposure window, from the sealed audit records."""

from __future__ import annotations

import psycopg

from pausegate.connectors.audit.sources import WhoSawWhat
from pausegate.evidence.verify import verify_bundle
from pausegate.models.pause import Phase
from tests.support.harness import Harness


def read_as(h: Harness, role: str, *tables: str) -> None:
    with psycopg.connect(h.dsn_as(role)) as conn:
        for table in tables:
            conn.execute(f"SELECT count(*) FROM telemetry.{table}").fetchone()


class TestWhoSawWhat:
    async def test_the_report_names_exactly_the_employees_who_read_the_data(self, harness: Harness) -> None:
        h = harness
        read_as(h, "employee_0002", "keystrokes")
        read_as(h, "employee_0004", "keystrokes", "mouse_events", "mouse_events")

        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        exposure = status.containment.exposure
        assert exposure is not None

        store = h.connectors.evidence_store
        report = WhoSawWhat.model_validate(store.read_json(exposure.report.uri.removeprefix("evidence://")))
        employees = {u for u in report.users if u.startswith("employee_")}
        assert employees == {"employee_0002", "employee_0004"}
        reads = {(e.user, e.object): e.reads for e in report.entries if e.user.startswith("employee_")}
        assert reads == {
            ("employee_0002", "telemetry.keystrokes"): 1,
            ("employee_0004", "telemetry.keystrokes"): 1,
            ("employee_0004", "telemetry.mouse_events"): 2,
        }
        assert exposure.readers == len(report.users)
        for entry in report.for_user("employee_0004"):
            assert entry.first_at is not None and entry.first_at <= status.started_at

        # A read refused after containment is not exposure, and the sealed bundles verify offline.
        try:
            read_as(h, "employee_0003", "keystrokes")
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("employee_0003 could still read after containment")
        for sealed in status.containment.evidence:
            path = store.bundle_path(sealed.bundle.uri.removeprefix("evidence://"))  # type: ignore[attr-defined]
            assert verify_bundle(path).ok
