"""How the API's answers look to people: lines and tables built from its response models.

Every value from the API goes in through ``line``/``add_row`` (see ``pausegate.cli.output``),
so it prints as the literal text it is.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pausegate.api.models import PauseSummary, PauseView, Receipt, RefusalsView
from pausegate.cli.break_glass_reads_view import break_glass_reads_table
from pausegate.cli.origins_view import derived_cause, origins_table, summary_text
from pausegate.cli.output import add_row, line, table, when
from pausegate.models.checklist import ItemStatus
from pausegate.models.data_stop import describe as describe_data_stop
from pausegate.models.origins import CAUSE_ITEM
from pausegate.models.plan import ResumePlan

TIMELINE_ROWS = 15
DETAIL_CHARS = 100


def receipt(answer: Receipt) -> Text:
    """An accepted action, and the digest approvals must now name if it changed."""
    text = line(("ok", "green"), " ", answer.message, " — pause is ", answer.state, " (as ", answer.actor, ")")
    if answer.digest:
        text.append_text(line("\n   approvals must name digest ", answer.digest))
    return text


def progress_line(view: PauseView) -> Text:
    """One line of containment progress, as people read it; once resumed, the resume's outcome."""
    if view.resumed is not None:
        r = view.resumed
        text = line(view.phase, f": switch {'on' if r.switch_on else 'off'} at {r.at:%Y-%m-%d %H:%M:%S} UTC"
                    f" · {r.collecting} agents collecting · {r.grants_restored} grants restored")
        c = view.conditions
        if c is not None:
            if c.profile is not None:
                text.append_text(line(" · capturing ", ", ".join(c.profile) or "nothing"))
            if c.consent is not None:
                text.append_text(line(f" · {c.consent.unconsented_employees} employees without consent, "
                                      f"{c.consent.agents_halted + c.consent.agents_pending} agents left halted"))
            if c.data_actions:
                text.append_text(line(f" · {len(c.data_actions)} data actions, "
                                      f"{sum(r.rows_affected for r in c.data_actions)} rows"))
        return text
    p = view.progress
    evidence = f"evidence {p.evidence_bundles} bundles sealed"
    pending = f" (pending: {', '.join(p.evidence_pending)})" if p.evidence_pending else ""
    return line(
        view.phase,
        f": agents halted {p.agents_halted} of {p.agents_total}"
        f" ({p.agents_unconfirmed} unconfirmed, {p.agents_waived} waived)"
        f" · datasets revoked and verified {p.datasets_verified} of {p.datasets_total}"
        f" ({p.grants_recorded} grants recorded)"
        f" · {evidence}",
        pending,
    )


def progress_table(view: PauseView) -> Table:
    """Containment at a glance: agents, switch, access, evidence, the latest errors; once resumed, what the
    resume did (the containment figures describe the past by then)."""
    p = view.progress
    shown = table(line("Pause of ", view.program, " — ", view.phase), show_header=False)
    if view.resumed is not None:
        r = view.resumed
        add_row(shown, "Program switch", f"{'on' if r.switch_on else 'off'} since {r.at:%Y-%m-%d %H:%M:%S} UTC")
        add_row(shown, "Agents collecting", f"{r.collecting} (confirmed by the fleet; {r.unconfirmed} resume when "
                f"they return)")
        add_row(shown, "Grants restored", f"{r.grants_restored}" + (" ✓" if r.grants_verified else " (NOT verified)"))
        return shown
    add_row(
        shown,
        "Agents halted",
        f"{p.agents_halted} of {p.agents_total}"
        + (f" ({p.agents_unconfirmed} unconfirmed)" if p.agents_unconfirmed else "")
        + (" ✓" if p.agents_confirmed else ""),
    )
    add_row(shown, "Program switch", "off" if p.switch_off else "ON")
    if p.switch_off_at is not None:
        add_row(shown, "Data stopped", describe_data_stop(p.data_stop, p.switch_off_at))
    add_row(
        shown,
        "Access revoked and verified",
        f"datasets {p.datasets_verified} of {p.datasets_total} ({p.grants_recorded} grants recorded)"
        + (" ✓" if p.access_revoked else ""),
    )
    if p.access_gone_at is not None:
        add_row(
            shown,
            "Access gone / verified",
            f"{p.access_gone_at:%Y-%m-%d %H:%M:%S} UTC / "
            + (f"{p.access_verified_at:%Y-%m-%d %H:%M:%S} UTC" if p.access_verified_at else "verifying"),
        )
    add_row(
        shown,
        "Evidence sealed",
        f"{p.evidence_bundles} bundles"
        + (f", pending {', '.join(p.evidence_pending)}" if p.evidence_pending else " ✓"),
    )
    copies = view.containment.copies
    if copies is not None:
        add_row(shown, "Copies of the data",
                f"{copies.found} found: {copies.quarantined} quarantined, {copies.left_database} left the database, "
                f"{copies.possible} possible" + (f", {len(copies.uncontained)} NOT contained" if copies.uncontained
                                                 else " ✓" if copies.complete else "")
                + (f"; {copies.readers_through_copies} roles read the data through a copy"
                   if copies.readers_through_copies else "")
                + (f"; {copies.data_subjects} people's records in the data or a copy"
                   if copies.data_subjects is not None else ""))
    if view.containment.origins is not None:
        add_row(shown, "Readable", summary_text(view.containment.origins))
    for error in p.errors[-3:]:
        add_row(shown, line(("retrying", "yellow")), error)
    return shown


def copies_table(view: PauseView) -> Table | None:
    """Each copy of the data (with --scope): kind, creator, when, rows, state, where it is now."""
    if not view.copies:
        return None
    shown = table(line("Copies of the data"), ("copy", "kind", "creator", "when", "rows", "state", "where"))
    for c in view.copies:
        state = line((c.state, "red")) if c.state in ("found", "left_database") else line(c.state)
        add_row(shown, c.id, c.kind.value, c.creator or "—", when(c.created_at),
                "—" if c.rows is None else str(c.rows), state, c.quarantined_as or c.where or "—")
    return shown


def checklist(items: list[ItemStatus], cause: Text | None = None) -> Table:
    """The review checklist: who may do each item, what it needs, who did it; ``cause`` (the derived
    cause, for a reviewer) under the root-cause item, beside whatever the reviewer attached."""
    shown = table(line("Checklist"), ("item", "title", "roles", "needs", "evidence", "done by"))
    for i in items:
        add_row(
            shown,
            i.id,
            i.title,
            ", ".join(i.roles),
            ", ".join(i.depends_on) or "—",
            ", ".join(i.evidence_required) or "—",
            line((i.completed_by, "green")) if i.completed_by else line(("open", "yellow")),
        )
        if cause is not None and i.id == CAUSE_ITEM:
            add_row(shown, "", cause, "", "", "", "")
    return shown


def _head(view: PauseView) -> Table:
    shown = table(line(view.program, " — ", view.phase), show_header=False)
    add_row(shown, "incident id", view.incident_id)
    add_row(shown, "reason", view.reason)
    add_row(shown, "severity", view.severity)
    add_row(shown, "commander", view.commander)
    add_row(shown, "started at", when(view.started_at))
    if view.approval_digest:
        add_row(shown, "approve digest", view.approval_digest)
    approvals = ", ".join(f"{a.actor_id} ({a.role})" for a in view.approvals) or "none"
    add_row(shown, "approvals", f"{len(view.approvals)} of {view.quorum}: {approvals}")
    return shown


def _plan(view: PauseView) -> Text | None:
    if view.plan is None:
        return None
    record = view.plan
    text = line(
        f"Plan {record.plan_digest[:12]} by ", record.proposed_by, f": agents {record.plan.agents.mode}, ",
        f"{len(record.plan.grants)} grants. ", record.plan.summary,
    )
    shown = data_actions(record.plan)
    if shown is not None:
        text.append_text(line("\n"))
        text.append_text(shown)
    decided = copy_decisions(record.plan)
    if decided is not None:
        text.append_text(line("\n"))
        text.append_text(decided)
    return text


def copy_decisions(plan: ResumePlan) -> Text | None:
    """What the plan does with each copy of the data; a copy left as it is shows as a risk, in red."""
    decisions = getattr(plan, "copies", [])
    if not decisions:
        return None
    text = line(f"Copies of the data ({len(decisions)}):")
    for d in decisions:
        if d.action == "waive":
            text.append_text(line("\n  ", ("RISK:", "bold red"), f" copy {d.copy_id} left as it is, waived: ",
                                  d.reason))
        else:
            how = f"purge with data action {d.data_action}" if d.action == "purge" else d.action.replace("_", " ")
            text.append_text(line(f"\n  copy {d.copy_id}: {how}"))
    return text


def data_actions(plan: ResumePlan) -> Text | None:
    """The plan's data actions, one a line; each destructive one says so, in red."""
    actions = getattr(plan, "data_actions", [])
    if not actions:
        return None
    text = line(f"Data actions ({len(actions)}, run once before access returns):")
    for i, action in enumerate(actions):
        text.append_text(line(f"\n  {i}. "))
        if action.destructive:
            text.append_text(line(("DESTRUCTIVE:", "bold red"), " ", action.describe(), (" (cannot be undone)", "red")))
        else:
            text.append_text(line(action.describe()))
    return text


def _timeline(view: PauseView) -> Table:
    shown = table(line(f"Timeline (latest {TIMELINE_ROWS})"), ("at", "actor", "action", "detail"))
    for e in view.timeline[-TIMELINE_ROWS:]:
        action = line(e.action) if e.accepted else line((e.action, "red"))
        add_row(shown, when(e.at), e.actor, action, e.detail[:DETAIL_CHARS])
    return shown


def status(view: PauseView) -> Group:
    """A pause in full: head, containment, checklist, plan, timeline."""
    plan = _plan(view)
    parts: list[Table | Text] = [_head(view), progress_table(view)]
    if (copies := copies_table(view)) is not None:
        parts.append(copies)
    if (origins := origins_table(view)) is not None:
        parts.append(origins)
    if (bg_reads := break_glass_reads_table(view)) is not None:
        parts.append(bg_reads)
    cause = derived_cause(view)
    parts.append(checklist(view.checklist, cause))
    if cause is not None and all(i.id != CAUSE_ITEM for i in view.checklist):
        parts.append(cause)
    if plan is not None:
        parts.append(plan)
    parts.append(_timeline(view))
    return Group(*parts)


def pauses(rows: list[PauseSummary]) -> Table:
    """The latest pause of every program, one row each."""
    shown = table(line("Pauses"), ("program", "state", "severity", "commander", "started", "agents halted"))
    for r in rows:
        p = r.progress
        add_row(shown, r.program, r.state, r.severity, r.commander, when(r.started_at),
                f"{p.agents_halted}/{p.agents_total}")
    return shown


def refusals(log: RefusalsView) -> Group:
    """Refusals no pause's timeline holds, then every break in their chain."""
    shown = table(line("Refusals outside any pause's timeline"), ("at", "actor", "program", "action", "reason"))
    for e in log.entries:
        add_row(shown, when(e.at), e.actor, e.program or "-", e.action, e.reason)
    broken = [line(("chain broken:", "red"), " ", problem) for problem in log.chain_problems]
    return Group(shown, *broken)
