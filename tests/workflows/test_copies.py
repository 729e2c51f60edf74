"""Copies of the leaked data in a pause, on the real stack: an employee copies the keystrokes into their own
schema during the window and shares the copy with everyone; the pause finds it, quarantines it, shows it
and will not resume until the plan decides it."""

from __future__ import annotations

import io

import psycopg
import pytest
from psycopg import sql
from rich.console import Console

from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.api.models import PauseView
from pausegate.cli import views
from pausegate.errors import ActionRefused
from pausegate.evidence.report import render_markdown
from pausegate.models.copies import CopiesDocument, CopyKind, listings
from pausegate.models.phase import Phase
from pausegate.models.plan import CopyDecision
from pausegate.models.state import PauseState
from pausegate.models.steps import ReportInput
from pausegate.models.updates import ApproveInput, ProposePlanInput
from tests.support.harness import CISO, COMMANDER, CPO, Harness
from tests.support.histories import replay_and_maybe_record
from tests.workflows.test_lifecycle import NARROWED_PLAN, complete_review, readable_history, telemetry_rows

COPIER = "employee_0002"
BYSTANDER = "employee_0003"
SANDBOX = "sandbox_0002"


def read_count(h: Harness, role: str, relation: str) -> int | None:
    """A real read as ``role``: the rows it sees, or None when the database refuses."""
    schema, _, name = relation.partition(".")
    with psycopg.connect(h.dsn_as(role), autocommit=True) as conn:
        try:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name))).fetchone()
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable):
            return None
        return int(row[0]) if row else None


def copy_the_keystrokes(h: Harness) -> int:
    """The curious employee: a sandbox of their own, the keystrokes copied into it, shared with everyone."""
    with psycopg.connect(h.database_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(SANDBOX),
                                                                        sql.Identifier(COPIER)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(sql.Identifier(SANDBOX)))
    with psycopg.connect(h.dsn_as(COPIER), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {SANDBOX}.my_keys AS SELECT * FROM telemetry.keystrokes")
        conn.execute(f"GRANT SELECT ON {SANDBOX}.my_keys TO PUBLIC")
    rows = read_count(h, BYSTANDER, f"{SANDBOX}.my_keys")
    assert rows is not None and rows > 0, "the bystander reads the shared copy before the pause"
    return rows


def shown(view: PauseView) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=300).print(views.status(view))
    return buffer.getvalue()


def copies_document(h: Harness, status: PauseState) -> CopiesDocument:
    copies = status.containment.copies
    assert copies is not None
    return CopiesDocument.model_validate(h.connectors.evidence_store.read_json(copies.document.key,
                                                                                copies.document.sha256))


class TestCopiesInAPause:
    async def test_a_copy_made_in_the_window_is_found_quarantined_and_kept_out_of_history(
            self, harness: Harness) -> None:
        h = harness
        await h.eventually(lambda: telemetry_rows(h.database_dsn)[0] > 0, what="telemetry rows")
        rows = copy_the_keystrokes(h)

        handle, _ = await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)

        copies = status.containment.copies
        assert copies is not None and copies.stage == "contained" and copies.complete
        assert (copies.found, copies.quarantined, copies.uncontained) == (1, 1, [])
        document = copies_document(h, status)
        [entry] = document.copies
        copy = entry.current
        assert (copy.kind, copy.creator, copy.state, copy.rows) == (CopyKind.CREATE_TABLE_AS, COPIER, "quarantined",
                                                                    rows)
        assert entry.verified and copy.quarantined_as is not None
        assert copies.undecided == [copy.id]
        # whose data: the copy's people counted with the dataset's (the list is owner-only evidence)
        exposure = status.containment.exposure
        assert exposure is not None and exposure.data_subjects is not None
        assert copies.data_subjects is not None and copies.data_subjects >= exposure.data_subjects
        assert copies.data_subjects_list is not None
        subjects = h.connectors.evidence_store.read_json(copies.data_subjects_list.key)
        assert [(p["copy"], p["count"] > 0) for p in subjects["copies"]] == [(copy.id, True)]
        # real reads: the bystander and the copier read nothing, where it was or where it is now
        for role in (BYSTANDER, COPIER):
            assert read_count(h, role, f"{SANDBOX}.my_keys") is None
            assert read_count(h, role, copy.quarantined_as) is None
        assert read_count(h, "security_breakglass", copy.quarantined_as) == rows
        # the copier cannot hand it out again either
        with psycopg.connect(h.dsn_as(COPIER), autocommit=True) as conn, pytest.raises(psycopg.Error):
            conn.execute(sql.SQL("GRANT SELECT ON {}.{} TO PUBLIC").format(
                *map(sql.Identifier, copy.quarantined_as.split("."))))

        # history holds the document's digest and counts, never the copy's name or its creator's
        history = readable_history(await handle.fetch_history())
        assert copies.document.sha256 in history
        assert "my_keys" not in history and SANDBOX not in history

    async def test_the_copy_is_shown_and_resume_waits_until_the_plan_decides_it(self, harness: Harness) -> None:
        h = harness
        await h.eventually(lambda: telemetry_rows(h.database_dsn)[0] > 0, what="telemetry rows")
        copy_the_keystrokes(h)
        handle, _ = await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        document = copies_document(h, status)
        [entry] = document.copies
        copy = entry.current
        assert copy.quarantined_as is not None

        # status: the counts for everyone, each copy from the sealed document for review roles
        text = shown(PauseView.of(status, reveal=True, copies=listings(document)))
        assert "1 found: 1 quarantined" in text
        assert all(part in text for part in (copy.id, COPIER, "create_table_as", "quarantined", copy.quarantined_as))

        await complete_review(h)
        with pytest.raises(ActionRefused) as refused:
            await h.act(ProposePlanInput(actor=COMMANDER, plan=NARROWED_PLAN))
        assert refused.value.code == "copies_undecided" and copy.id in refused.value.reason
        # leaving the copy as it is belongs to the commander, with a reason; dropping it is anyone's plan
        decided = NARROWED_PLAN.model_copy(update={"copies": [CopyDecision(copy_id=copy.id, action="drop")]})
        await h.act(ProposePlanInput(actor=COMMANDER, plan=decided))
        status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
        assert status.approval_digest is not None
        assert f"copy {copy.id}: drop" in shown(PauseView.of(status, reveal=True))
        await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
        await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))
        final: PauseState = await handle.result()

        assert final.phase == Phase.RESUMED
        assert read_count(h, "security_breakglass", copy.quarantined_as) is None  # dropped before access returned
        assert any(e.action == "resume.copies" and "1 copies dropped" in e.detail for e in final.timeline)
        assert final.report is not None
        report = ReportInput.model_validate(h.connectors.evidence_store.read_json(final.report.key))
        markdown = render_markdown(report)
        assert "## Copies of the data" in markdown
        assert f"| `{copy.id}` | create_table_as | {COPIER} |" in markdown and f"Copy `{copy.id}`: drop" in markdown
        await replay_and_maybe_record(handle, "copies-resumed")

    async def test_a_copy_of_the_copy_is_found_in_the_log_and_quarantined_too(self, harness: Harness) -> None:
        """The second copy's statement names only the first copy: the log is read again for it."""
        h = harness
        await h.eventually(lambda: telemetry_rows(h.database_dsn)[0] > 0, what="telemetry rows")
        rows = copy_the_keystrokes(h)
        with psycopg.connect(h.database_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA sandbox_0004 AUTHORIZATION {}").format(
                sql.Identifier("employee_0004")))
        with psycopg.connect(h.dsn_as("employee_0004"), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE sandbox_0004.again AS SELECT * FROM {SANDBOX}.my_keys")

        await h.pause()
        status = await h.wait_for_state(Phase.UNDER_REVIEW)
        copies = status.containment.copies
        assert copies is not None and copies.complete and copies.log_bundles
        by_creator = {c.current.creator: c.current for c in copies_document(h, status).copies}
        again = by_creator["employee_0004"]
        assert (again.kind, again.state, again.rows) == (CopyKind.CREATE_TABLE_AS, "quarantined", rows)
        assert [e.source for e in again.evidence] == ["statement"] and again.sources == (f"{SANDBOX}.my_keys",)
        assert again.datasets == ("telemetry",)
        assert again.quarantined_as is not None
        assert read_count(h, BYSTANDER, again.quarantined_as) is None
        assert read_count(h, "employee_0004", again.quarantined_as) is None
        # who saw what: the bystander and the second copier read the data through the first copy
        assert copies.who_saw_what is not None and copies.readers_through_copies >= 2
        through = WhoSawWhat.model_validate(h.connectors.evidence_store.read_json(copies.who_saw_what.key))
        paths = {(e.user, e.path) for e in through.entries if e.reads}
        assert {(BYSTANDER, f"through {SANDBOX}.my_keys"), ("employee_0004", f"through {SANDBOX}.my_keys")} <= paths
