"""Consent with provenance, on the real stack: the database records who wrote each consent row and when
(whatever the writer supplies), only grants written through the runbook's granting roles count, the
consent table as the resume read it is sealed evidence the pause records, and a consent withdrawn
during the watch is written back, so the next resume still knows it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from pausegate.models.fleet import AgentState
from pausegate.models.phase import Phase
from pausegate.models.runbook import WatchSpec
from pausegate.models.updates import ProposePlanInput
from pausegate.models.watch import WithdrawConsentInput
from pausegate.temporal.watches import read_watch, withdraw_consent
from tests.support.fault_report import record_result
from tests.support.harness import COMMANDER, PRIVACY, HarnessFactory
from tests.workflows.test_lifecycle import complete_review
from tests.workflows.test_resume_conditions import AGENTS, CONDITIONED_PLAN, UNCONSENTED, to_awaiting_approval
from tests.workflows.test_resume_guard import approve
from tests.workflows.test_watch import watch_when

SUPPLIED = datetime(2000, 1, 1, tzinfo=UTC)


def server_now(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def make_registrar(dsn: str) -> str:
    """A role of the test's own through which consent is granted (roles are shared by the cluster)."""
    role = f"consent_registrar_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA telemetry TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON telemetry.consent TO {}").format(sql.Identifier(role)))
    return role


def consent_row(dsn: str, employee: str) -> tuple[bool, str, str, datetime]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT granted, granted_by, granted_as, granted_at FROM telemetry.consent"
                           " WHERE employee = %s", (employee,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


@pytest.mark.slow
class TestConsentProvenance:
    async def test_a_consent_an_employee_flipped_is_shown_with_its_writer_and_server_time_and_does_not_count(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=AGENTS) as h:
            registrar = make_registrar(h.database_dsn)
            consent = h.runbook.consent
            assert consent is not None
            h.runbook = h.runbook.model_copy(update={
                "consent": consent.model_copy(update={"granting_roles": [registrar]})})
            # The proposal reads the consent table, which makes the database record provenance from then on.
            await to_awaiting_approval(h, CONDITIONED_PLAN)

            with psycopg.connect(h.database_dsn, autocommit=True) as conn:
                # HR records every employee's answer again through its role.
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(registrar)))
                conn.execute("UPDATE telemetry.consent SET granted = granted")
                conn.execute("RESET ROLE")
                # An employee who declined, with UPDATE on the table, flips their own flag and dates it.
                conn.execute("GRANT USAGE ON SCHEMA telemetry TO employee_0004")
                conn.execute("GRANT SELECT, UPDATE ON telemetry.consent TO employee_0004")
                before = server_now(h.database_dsn)
                conn.execute("SET SESSION AUTHORIZATION employee_0004")
                conn.execute("UPDATE telemetry.consent SET granted = true, recorded_at = %s"
                             " WHERE employee = 'employee_0004'", (SUPPLIED,))
                conn.execute("RESET SESSION AUTHORIZATION")

            await approve(h)
            final = await h.wait_for_state(Phase.RESUMED)
            c = final.conditions
            assert c is not None and c.consent is not None
            # The flipped flag did not count: that employee's agents stay halted.
            assert c.consent.unconsented_employees == 1 and c.consent.grants_not_counted == 1
            assert sorted(c.consent.agent_ids) == UNCONSENTED
            program = h.fleet_state.program(h.program)
            assert all(program.state_of(program.agents[a]) == AgentState.HALTED for a in UNCONSENTED)
            assert any(e.action == "resume.consent" and "1 grants not written through" in e.detail
                       for e in final.timeline)

            # Who flipped it and when, as the database recorded them.
            granted, by, as_, at = consent_row(h.database_dsn, "employee_0004")
            assert (granted, by, as_) == (True, "employee_0004", "employee_0004")
            assert at >= before and at != SUPPLIED
            # The consent table as the resume read it is sealed, and the pause's state names it.
            ref = c.consent.snapshot
            assert ref is not None
            snapshot = h.connectors.evidence_store.read_json(ref.key, expected_sha256=ref.sha256)
            assert snapshot["granting_roles"] == [registrar]
            rows = {r["subject"]: r for r in snapshot["rows"]}
            flipped = rows["employee_0004"]
            assert (flipped["granted"], flipped["granted_by"], flipped["granted_as"], flipped["counted"]) == (
                True, "employee_0004", "employee_0004", False)
            assert datetime.fromisoformat(flipped["granted_at"]) == at
            assert rows["employee_0001"]["granted_as"] == registrar and rows["employee_0001"]["counted"]
            record_result("an employee with UPDATE flips their own consent and dates it", "resume of consenting "
                          "employees, the runbook naming the granting role", injected=1,
                          outcome="not counted: their agents left halted; writer and server time sealed")


@pytest.mark.slow
class TestWithdrawalOutlivesTheWatch:
    async def test_a_consent_withdrawn_during_the_watch_is_known_at_the_next_resume(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=AGENTS) as h:
            h.runbook = h.runbook.model_copy(update={
                "watch": WatchSpec(period=timedelta(minutes=10), interval=timedelta(seconds=1))})
            await to_awaiting_approval(h, CONDITIONED_PLAN)
            await approve(h)
            await h.wait_for_state(Phase.RESUMED)
            await watch_when(h, lambda s: s.checks >= 1, "a check")

            before = server_now(h.database_dsn)
            await withdraw_consent(h.client, h.program, WithdrawConsentInput(
                actor=PRIVACY, employee="employee_0001", reason="asked by the employee"))
            withdrawn = (await read_watch(h.client, h.program)).withdrawals[0]

            # The watch is gone with the next pause; its resume still leaves employee_0001 out.
            await h.pause(COMMANDER, reason="another look")
            await h.wait_for_state(Phase.UNDER_REVIEW)
            await watch_when(h, lambda s: s.status != "watching", "the watch superseded")
            await complete_review(h)
            await h.act(ProposePlanInput(actor=COMMANDER, plan=CONDITIONED_PLAN))
            await approve(h)
            final = await h.wait_for_state(Phase.RESUMED, timeout=90)
            c = final.conditions
            assert c is not None and c.consent is not None and c.consent.unconsented_employees == 2
            assert sorted(c.consent.agent_ids) == sorted([*UNCONSENTED, "agent-00001", "agent-00006"])
            # The consent table holds the withdrawal, written by the tool at the server's time.
            granted, _, _, at = consent_row(h.database_dsn, "employee_0001")
            assert granted is False and at >= before
            assert withdrawn.written_back_at is not None and withdrawn.written_back_at >= at
            record_result("a consent withdrawn during the watch, the watch then gone", "the next pause's resume",
                          injected=1, outcome="the employee's agents left halted: the consent table holds the "
                          "withdrawal")


@pytest.mark.slow
class TestServerWriteTime:
    async def test_a_row_of_a_dropped_type_with_a_supplied_old_timestamp_is_still_drift(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=AGENTS) as h:
            h.runbook = h.runbook.model_copy(update={
                "watch": WatchSpec(period=timedelta(minutes=10), interval=timedelta(seconds=1))})
            await to_awaiting_approval(h, CONDITIONED_PLAN)
            await approve(h)
            await h.wait_for_state(Phase.RESUMED)
            watched = await watch_when(h, lambda s: s.checks >= 1, "a check")
            assert watched.last_check is not None and watched.last_check.holds

            # The fleet's writer stores a window title, a type the plan dropped (and no data action
            # empties), dated long before the resume.
            with psycopg.connect(h.dsn_as("telemetry_ingest"), autocommit=True) as conn:
                conn.execute("INSERT INTO telemetry.keystrokes (agent_id, employee, captured_at, key_code,"
                             " window_title) VALUES ('agent-00002', 'employee_0002', %s, 65, 'backdated')",
                             (SUPPLIED,))
            drifted = await watch_when(h, lambda s: s.status != "watching", "drift")
            assert drifted.status == "drifted" and drifted.drift is not None
            assert "1 rows collected since the resume carry dropped data types (window_titles)" in drifted.drift
            record_result("a row of a dropped type dated before the resume", "watch after a resume", injected=1,
                          outcome="drift by the server's write time: the switch pulled again")
