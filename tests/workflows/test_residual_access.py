"""Access no REVOKE can close is reported by role and path and blocks sign-off until the commander waives it."""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

from pausegate.models.phase import Phase
from pausegate.models.updates import WaiveResidualInput
from tests.support.harness import ANALYST, COMMANDER, HarnessFactory
from tests.workflows.test_refusals import refused


class TestResidualAccess:
    async def test_a_table_owned_by_another_role_is_residual_until_waived(self, make_harness: HarnessFactory) -> None:
        async with make_harness(agents=10) as h:
            owner = f"owner_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(h.database_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
                conn.execute(sql.SQL("ALTER TABLE telemetry.mouse_events OWNER TO {}").format(sql.Identifier(owner)))

            await h.pause()
            status = await h.wait_for(lambda s: bool(s.containment.datasets), what="dataset contained")
            dataset = status.containment.datasets[0]
            assert dataset.verified and dataset.residual_count >= 1
            assert any(r.startswith(f"{owner}:telemetry.mouse_events:owner") for r in dataset.residual)
            status = await h.wait_for(
                lambda s: any(e.action == "containment.dataset.residual" for e in s.timeline)
                and not s.containment.evidence_pending and s.containment.exposure is not None
                and s.containment.copies is not None and s.containment.copies.stage == "contained",
                what="residual reported, evidence sealed and copies contained",
            )
            assert status.phase == Phase.CONTAINING

            await refused(h, WaiveResidualInput(actor=ANALYST, dataset="telemetry", reason="fine"), "wrong_role")
            await h.act(WaiveResidualInput(actor=COMMANDER, dataset="telemetry",
                                           reason="owner is the platform team's service role; tracked in SEC-42"))
            status = await h.wait_for_state(Phase.UNDER_REVIEW)
            assert status.containment.residual_waived == ["telemetry"]
            await refused(h, WaiveResidualInput(actor=COMMANDER, dataset="telemetry", reason="again"),
                          "nothing_to_waive")


class TestAccessGoneThenVerified:
    async def test_the_pause_records_when_access_was_gone_and_when_it_was_verified(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=10) as h:
            await h.pause()
            status = await h.wait_for(
                lambda s: s.containment.access_verified_at is not None, what="access verified"
            )
            c = status.containment
            dataset = c.datasets[0]
            assert c.started_at is not None and c.access_gone_at is not None
            assert dataset.access_gone_at is not None and dataset.access_verified_at is not None
            assert c.started_at <= dataset.access_gone_at <= dataset.access_verified_at
            assert (c.access_gone_at, c.access_verified_at) == (dataset.access_gone_at, dataset.access_verified_at)
            assert c.access_gone == {"telemetry": dataset.access_gone_at}
            assert dataset.snapshot is not None and dataset.snapshot.key.endswith("/catalog/telemetry")
            actions = [e.action for e in status.timeline]
            assert actions.index("containment.dataset.access_gone") < actions.index("containment.dataset.revoked")
            # the access really is gone for a former reader
            with psycopg.connect(h.database_dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT has_table_privilege('telemetry_analysts', 'telemetry.keystrokes', 'SELECT')"
                ).fetchone()
            assert row is not None and row[0] is False
