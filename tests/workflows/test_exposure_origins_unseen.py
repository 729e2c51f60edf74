"""On real PostgreSQL: a superuser's REVOKE of a grant another role made revokes nothing, and the statement
log still shows it; who saw what counts a read made after it through the grant that stayed (issue 27)."""

from __future__ import annotations

import psycopg

from pausegate.models.origins import OriginDocument
from pausegate.models.phase import Phase
from tests.support.harness import Harness
from tests.workflows.test_exposure import read_as, report_of


class TestARevokeThatRevokedNothing:
    async def test_a_read_through_the_grant_that_stayed_is_exposure(self, harness: Harness) -> None:
        h = harness
        with psycopg.connect(h.database_dsn, autocommit=True) as conn:
            # the worked example's grant to all_employees was made as schema_migrations: this removes only the
            # owner's own grant (there is none), so every employee can still read the keystrokes
            conn.execute("REVOKE SELECT ON telemetry.keystrokes FROM all_employees")
        read_as(h, "employee_0002", "SELECT count(*) FROM telemetry.keystrokes")
        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        assert status.containment.origins is not None
        ref = status.containment.origins.document
        document = OriginDocument.model_validate(h.connectors.evidence_store.read_json(ref.key, ref.sha256))
        grant = next(p for p in document.paths if p.id == "grant:telemetry.keystrokes:all_employees")
        first = grant.intervals[0]
        assert first.closed_by is not None and first.closed_by.statement.startswith("REVOKE SELECT")
        assert grant.origin == "unknown" and grant.intervals[-1].opened_at == first.closed_at
        entry = next(e for e in report_of(h, status).entries
                     if e.user == "employee_0002" and e.object == "telemetry.keystrokes")
        assert entry.reads == 1 and entry.outside == 0
