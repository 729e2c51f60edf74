"""Break-glass during a pause, on the real stack: an embedded PostgreSQL of the module's own (its
pg_hba.conf is changed to ask a grant's role for its password), the Temporal dev server, the worker.
The grant ends by the pause's timer (or an early return), ends the sessions it had, refuses new
logins, leaves sealed statements, and holds the resume until someone other than its holder and its
approver has reviewed it."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql
from temporalio.client import Client

from pausegate.embedded.postgres import dsn_as, start_logging_postgres
from pausegate.errors import ActionRefused
from pausegate.evidence.report import render_markdown
from pausegate.models.break_glass import (
    ApproveBreakGlassInput,
    BreakGlassSpec,
    EndBreakGlassInput,
    Grant,
    RequestBreakGlassInput,
    TableAccess,
    scram_verifier,
)
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.steps import ReportInput
from pausegate.models.updates import ApproveInput, CompleteItemInput, ProposePlanInput
from tests.support.break_glass import PASSWORD, SALT, password_for
from tests.support.harness import ANALYST, CISO, COMMANDER, CPO, PRIVACY, SECURITY_LEAD, Harness, pause_harness
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_copies import copies_document, copy_the_keystrokes, read_count
from tests.workflows.test_lifecycle import NARROWED_PLAN, can_read, complete_review

SPEC = BreakGlassSpec(requester_roles=["security-analyst"], approver_roles=["incident-commander", "security-lead"],
                      reviewer_roles=["privacy-officer", "security-lead"], max_duration=timedelta(minutes=30),
                      emergency_self_grant=True)
REASON = "confirm what was typed into the leaked rows"
DO_BLOCK = "DO $bg$ BEGIN PERFORM count(*) FROM telemetry.keystrokes WHERE typed_content LIKE '%pass%'; END $bg$"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Path, Path]]:
    """(superuser DSN, log dir, pg_hba.conf) of a server this module may reconfigure."""
    root = Path(tempfile.mkdtemp(prefix="pausegate-bg-"))
    dsn, pg = start_logging_postgres(root / "pg", root / "pglog", keep=False)
    yield dsn, root / "pglog", root / "pg" / "pg_hba.conf"
    pg.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture
async def h(temporal_client: Client, server: tuple[str, Path, Path], tmp_path: Path) -> AsyncIterator[Harness]:
    async with pause_harness(temporal_client, server[0], server[1], tmp_path, agents=20) as harness:
        harness.runbook = harness.runbook.model_copy(update={"break_glass": SPEC})
        yield harness


def login(h: Harness, role: str, password: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn_as(h.database_dsn, role), password=password, autocommit=True, connect_timeout=10)


async def under_review(h: Harness) -> None:
    await h.pause()
    await h.wait_for_state(Phase.UNDER_REVIEW, timeout=120)


async def request(h: Harness, seconds: float, *, emergency: bool = False, approver: object = COMMANDER,
                  verifier: str | None = None) -> Grant:
    """A grant of telemetry.keystrokes to the analyst, approved (or self-granted), once its role is open."""
    await h.act(RequestBreakGlassInput(actor=ANALYST, dataset="telemetry", tables=[TableAccess(table="keystrokes")],
                                       reason=REASON, duration=timedelta(seconds=seconds), emergency=emergency,
                                       scram_verifier=verifier))
    status = await h.status()
    assert status.break_glass is not None
    grant_id = status.break_glass.grants[-1].id
    if not emergency:
        await h.act(ApproveBreakGlassInput(actor=approver, grant_id=grant_id))  # type: ignore[arg-type]
    return await wait_grant(h, grant_id, "open")


async def wait_grant(h: Harness, grant_id: str, *states: str, timeout: float = 120) -> Grant:
    def grant_of(s: object) -> Grant | None:
        bg = getattr(s, "break_glass", None)
        return bg.grant(grant_id) if bg is not None else None

    status = await h.wait_for(lambda s: (g := grant_of(s)) is not None and g.status in states, timeout=timeout,
                              what=f"grant {grant_id} {states}")
    grant = grant_of(status)
    assert grant is not None
    return grant


class TestBreakGlassGrant:
    async def test_a_long_query_is_ended_at_the_grant_end_and_no_login_works_after_it(
            self, h: Harness, server: tuple[str, Path, Path]) -> None:
        await under_review(h)
        verifier = scram_verifier(PASSWORD, SALT)
        # long enough for the holder's query and password login below, and the timer still ends it
        grant = await request(h, 8, verifier=verifier)
        assert grant.scram_verifier is None and verifier not in (await h.status()).model_dump_json()
        role_dsn = dsn_as(h.database_dsn, grant.role)
        holder = login(h, grant.role)  # trusted, as the server's socket is by default
        long_query = asyncio.create_task(asyncio.to_thread(
            holder.execute, "SELECT pg_sleep(3600), count(*) FROM telemetry.keystrokes"))
        password_for(server[2], h.database_dsn, role_dsn, grant.role, required=True)
        with login(h, grant.role, PASSWORD) as by_password:
            assert by_password.execute("SELECT count(*) > 0 FROM telemetry.keystrokes").fetchone() == (True,)

        closed = await wait_grant(h, grant.id, "closed")
        assert closed.closed is not None and closed.closed.verified
        assert closed.closed.ended_by == "its end (timer)"
        assert closed.closed.sessions_terminated >= 1
        with pytest.raises(psycopg.OperationalError):
            await long_query
        holder.close()
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            login(h, grant.role, PASSWORD)
        password_for(server[2], h.database_dsn, role_dsn, grant.role, required=False)
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            login(h, grant.role)

    async def test_of_two_overlapping_grants_the_second_outlives_the_first(self, h: Harness) -> None:
        await under_review(h)
        first = await request(h, 5)
        second = await request(h, 600, approver=SECURITY_LEAD)
        assert (await h.status()).break_glass.open_per_holder() == {ANALYST.id: 2}  # type: ignore[union-attr]
        await wait_grant(h, first.id, "closed")

        status = await h.status()
        assert status.break_glass is not None and status.break_glass.open_per_holder() == {ANALYST.id: 1}
        with login(h, second.role) as conn:
            assert conn.execute("SELECT count(*) > 0 FROM telemetry.keystrokes").fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            login(h, first.role)

        await h.act(EndBreakGlassInput(actor=ANALYST, grant_id=second.id, reason="done"))
        ended = await wait_grant(h, second.id, "closed")
        assert ended.closed is not None and ended.closed.ended_by == ANALYST.id and ended.closed.verified

    async def test_the_holder_passes_nothing_on_and_a_do_block_is_sealed_verbatim(self, h: Harness) -> None:
        await under_review(h)
        grant = await request(h, 600)
        with login(h, grant.role) as holder:
            holder.execute("GRANT SELECT ON telemetry.keystrokes TO employee_0001")  # no grant option: a warning
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                holder.execute(sql.SQL("GRANT {} TO employee_0001").format(sql.Identifier(grant.role)))
            holder.execute(DO_BLOCK)
            holder.execute("SELECT count(*) FROM telemetry.keystrokes")
        assert not can_read(h.dsn_as("employee_0001"), "keystrokes")

        await h.act(EndBreakGlassInput(actor=COMMANDER, grant_id=grant.id, reason="enough"))
        closed = (await wait_grant(h, grant.id, "closed")).closed
        assert closed is not None and closed.evidence is not None and closed.statements >= 3
        records = list(h.connectors.evidence_store.iter_bundle(closed.evidence.key, closed.evidence.sha256))
        messages = [json.loads(r["line"]).get("message", "") for r in records]
        assert f"statement: {DO_BLOCK}" in messages
        assert all(json.loads(r["line"]).get("user") == grant.role for r in records)
        # who saw what over them: the holder's break-glass reads
        assert closed.reads >= 1 and closed.reads_report is not None
        reads = h.connectors.evidence_store.read_json(closed.reads_report.key, closed.reads_report.sha256)
        assert reads["kind"] == "break-glass" and reads["grant"] == grant.id
        assert grant.role in reads["who_saw_what"]["users"]
        assert {(e["user"], e["object"]) for e in reads["who_saw_what"]["entries"] if e["reads"]} == {
            (grant.role, "telemetry.keystrokes")}

    async def test_a_grant_on_a_quarantined_copy_reads_that_copy_and_ends_with_it(self, h: Harness) -> None:
        rows = copy_the_keystrokes(h)
        await under_review(h)
        status = await h.status()
        [entry] = [c for c in copies_document(h, status).copies if c.current.state == "quarantined"]
        copy, held = entry.current, status.containment.copies
        assert copy.quarantined_as is not None and held is not None and copy.id in held.undecided
        await h.act(RequestBreakGlassInput(actor=ANALYST, dataset="telemetry", copies=[copy.id], reason=REASON,
                                           duration=timedelta(minutes=10)))
        await h.act(ApproveBreakGlassInput(actor=COMMANDER, grant_id="g1"))
        grant = await wait_grant(h, "g1", "open")
        assert read_count(h, grant.role, copy.quarantined_as) == rows
        assert read_count(h, grant.role, "telemetry.keystrokes") is None  # the copy only

        await h.act(EndBreakGlassInput(actor=ANALYST, grant_id="g1"))
        closed = (await wait_grant(h, "g1", "closed")).closed
        assert closed is not None and closed.verified
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            login(h, grant.role)
        with pytest.raises(ActionRefused) as unknown:
            await h.act(RequestBreakGlassInput(actor=ANALYST, dataset="telemetry", copies=["not-a-copy"],
                                               reason=REASON, duration=timedelta(minutes=1)))
        assert unknown.value.code == "unknown_copy"


class TestBreakGlassReview:
    async def test_the_resume_waits_for_the_review_and_an_emergency_grant_told_every_approver(
            self, h: Harness) -> None:
        await under_review(h)
        await complete_review(h)
        await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        assert status.approval_digest is not None
        await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))

        grant = await request(h, 5, emergency=True)
        status = await h.status()
        assert status.phase == Phase.UNDER_REVIEW and status.approvals == []
        messages = [m.text for m in h.chat.sink.received("security")]
        for role in SPEC.approver_roles:
            assert any(f"@{role}" in m and f"emergency break-glass grant {grant.id}" in m for m in messages)

        with pytest.raises(ActionRefused) as refused:
            await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest or "0" * 64))
        assert refused.value.code == "wrong_state"
        with pytest.raises(ActionRefused) as early:
            await h.act(CompleteItemInput(actor=PRIVACY, item_id=grant.review_item))
        assert early.value.code == "grant_open"

        await wait_grant(h, grant.id, "closed")
        reviewer_too = ANALYST.model_copy(update={"roles": ["security-analyst", "privacy-officer"]})
        with pytest.raises(ActionRefused) as own:
            await h.act(CompleteItemInput(actor=reviewer_too, item_id=grant.review_item))
        assert own.value.code == "separation_of_duties"
        assert (await h.status()).phase == Phase.UNDER_REVIEW

        await h.act(CompleteItemInput(actor=PRIVACY, item_id=grant.review_item, note="reads match the reason"))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        assert status.approval_digest is not None
        await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
        await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))
        final = await h.wait_for_state(Phase.RESUMED, timeout=120)
        assert final.break_glass is not None and final.break_glass.grants[0].status == "closed"

        # the report lists the grant with its review, and the runbook's static role as a standing exception
        closed = PauseState.model_validate(await h.client.get_workflow_handle(final.pause_id).result())
        assert closed.report is not None
        document = h.connectors.evidence_store.read_json(closed.report.key, closed.report.sha256)
        assert [x["role"] for x in document["standing"]] == ["security_breakglass"]
        markdown = render_markdown(ReportInput.model_validate(document))
        assert "## Break-glass access during the pause" in markdown
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {grant.id} |"))
        assert ANALYST.id in row and "emergency self-grant" in row and PRIVACY.id in row
        assert "| telemetry | security_breakglass |" in markdown
        await replay_and_maybe_record(h.client.get_workflow_handle(final.pause_id), "break-glass-reviewed")
        grants = h.client.get_workflow_handle(f"{final.pause_id}/break-glass/{grant.role}")
        await replay_and_maybe_record(grants, "break-glass-grant")
