"""Break-glass on the real stack, two of its rules end to end: the review of a grant is someone else than
its holder and its approver by the rule approvals follow (an OIDC identity with the same verified email is
the same person), and a grant whose statements no log would keep is refused, with the reason, leaving no
role behind and the refusal in the pause's timeline."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from temporalio.client import Client

from pausegate.config import PostgresConnection
from pausegate.embedded.postgres import dsn_as, start_logging_postgres
from pausegate.errors import ActionRefused
from pausegate.models.break_glass import ApproveBreakGlassInput, RequestBreakGlassInput, TableAccess
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.updates import CompleteItemInput
from tests.support.harness import Harness, pause_harness
from tests.workflows.test_break_glass import REASON, SPEC, wait_grant

ISSUER = "oidc:https://idp.example.com#"
# The analyst signs in through the identity provider; so do the commander and the security lead.
HOLDER = Actor(id=f"{ISSUER}ann-1", roles=["security-analyst"], email="ann@example.com")
APPROVER = Actor(id=f"{ISSUER}sam-1", roles=["security-lead"], email="sam@example.com")
# Other identities of the same people (a second subject at the provider, the same verified email),
# holding a reviewer role.
HOLDER_AGAIN = Actor(id=f"{ISSUER}ann-2", roles=["privacy-officer"], email="ann@example.com")
APPROVER_AGAIN = Actor(id=f"{ISSUER}sam-2", roles=["privacy-officer"], email="sam@example.com")
REVIEWER = Actor(id=f"{ISSUER}pia-1", roles=["privacy-officer"], email="pia@example.com")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pausegate-bg-sod-"))
    dsn, pg = start_logging_postgres(root / "pg", root / "pglog", keep=False)
    yield dsn, root / "pglog"
    pg.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture
async def h(temporal_client: Client, server: tuple[str, Path], tmp_path: Path) -> AsyncIterator[Harness]:
    async with pause_harness(temporal_client, server[0], server[1], tmp_path, agents=20) as harness:
        harness.runbook = harness.runbook.model_copy(update={"break_glass": SPEC})
        yield harness


async def ask(h: Harness, holder: Actor, minutes: float) -> str:
    await h.act(RequestBreakGlassInput(actor=holder, dataset="telemetry", tables=[TableAccess(table="keystrokes")],
                                       reason=REASON, duration=timedelta(minutes=minutes)))
    status = await h.status()
    assert status.break_glass is not None
    return status.break_glass.grants[-1].id


class TestReviewSeparation:
    async def test_an_identity_sharing_the_holders_or_the_approvers_verified_email_does_not_review(
            self, h: Harness) -> None:
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW, timeout=120)
        grant_id = await ask(h, HOLDER, 0.1)
        await h.act(ApproveBreakGlassInput(actor=APPROVER, grant_id=grant_id))
        grant = await wait_grant(h, grant_id, "closed")
        assert grant.approved_by == APPROVER.id and grant.approved_by_email == APPROVER.email

        for same, who in ((HOLDER_AGAIN, "holder"), (APPROVER_AGAIN, "approver")):
            with pytest.raises(ActionRefused) as refused:
                await h.act(CompleteItemInput(actor=same, item_id=grant.review_item, note="looked"))
            assert refused.value.code == "separation_of_duties", who
            assert who in str(refused.value)
        status = await h.status()
        item = next(i for i in status.checklist if i.id == grant.review_item)
        assert not item.done and status.phase == Phase.UNDER_REVIEW

        await h.act(CompleteItemInput(actor=REVIEWER, item_id=grant.review_item, note="reads match the reason"))
        status = await h.status()
        item = next(i for i in status.checklist if i.id == grant.review_item)
        assert item.done and item.completed_by == REVIEWER.id


class TestUnloggedGrant:
    async def test_a_grant_no_log_would_keep_is_refused_with_the_reason_and_leaves_no_role(
            self, h: Harness, server: tuple[str, Path]) -> None:
        await h.pause()
        await h.wait_for_state(Phase.UNDER_REVIEW, timeout=120)
        # The deployment's login is no superuser (log_statement is not its to set) and the server has no
        # pgaudit: what the documented least-privilege login for break-glass is, on a server without pgaudit.
        tool = f"bg_tool_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(h.database_dsn, autocommit=True) as admin:
            assert admin.execute("SELECT current_setting('pgaudit.role', true)").fetchone() in ((None,), ("",))
            admin.execute(f"CREATE ROLE {tool} LOGIN CREATEROLE")
            admin.execute(f"GRANT pg_signal_backend TO {tool}")
            admin.execute(f"GRANT USAGE ON SCHEMA telemetry TO {tool} WITH GRANT OPTION")
            admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA telemetry TO {tool} WITH GRANT OPTION")
        connections = h.connectors.settings.connections
        superuser = connections["telemetry-db"]
        connections["telemetry-db"] = PostgresConnection(dsn=dsn_as(h.database_dsn, tool),  # type: ignore[arg-type]
                                                         log_dir=server[1])
        try:
            grant_id = await ask(h, HOLDER, 10)
            await h.act(ApproveBreakGlassInput(actor=APPROVER, grant_id=grant_id))
            grant = await wait_grant(h, grant_id, "refused")
        finally:
            connections["telemetry-db"] = superuser

        assert grant.closed is not None and not grant.closed.opened
        assert "log_statement" in grant.closed.reason and "pgaudit" in grant.closed.reason
        with psycopg.connect(h.database_dsn, autocommit=True) as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (grant.role,)).fetchone() is None
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn_as(h.database_dsn, grant.role), connect_timeout=10)

        status = await h.status()
        refusals = [e for e in status.timeline if e.action == "break_glass.refused"]
        assert len(refusals) == 1 and not refusals[0].accepted
        assert refusals[0].detail.startswith(f"{grant.id}: ") and "log_statement" in refusals[0].detail
        assert not [e for e in status.timeline if e.action in ("break_glass.opened", "break_glass.closed")]
        # nothing to review: the grant gave no access, and the item says so
        item = next(i for i in status.checklist if i.id == grant.review_item)
        assert item.done and item.note == "the grant never opened"
