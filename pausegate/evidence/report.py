"""The final report of a pause, as Markdown for people (the JSON is the stored evidence itself)."""

from __future__ import annotations

from datetime import datetime

from pausegate.approvals.describe import signed_by
from pausegate.evidence.anchor import anchors_of, plants_of
from pausegate.evidence.break_glass_report import break_glass_lines
from pausegate.evidence.conditions_report import conditions_lines
from pausegate.models.data_stop import describe as describe_data_stop
from pausegate.models.steps import ReportInput


def _cell(text: object) -> str:
    # A pipe or newline in a reason would break the table it sits in.
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def _copies(report: ReportInput) -> list[str]:
    """The copies of the data made in the window, each with where it stands (none before copies were found)."""
    x = report.status.containment.copies
    if x is None:
        return []
    lines = [
        "", "## Copies of the data", "",
        f"{x.found} copies made in the exposure window: {x.quarantined} quarantined, {x.left_database} left the "
        f"database, {x.possible} possible, {x.gone} gone; document `{x.document.uri}` (`{x.document.sha256}`).",
    ]
    if x.who_saw_what is not None:
        lines.append(f"{x.readers_through_copies} roles read the data through a copy of it; who saw what through "
                     f"the copies `{x.who_saw_what.uri}` (`{x.who_saw_what.sha256}`).")
    if x.data_subjects is not None:
        lines.append(f"People whose records the data or a copy of it held: {x.data_subjects}.")
    if x.uncontained:
        lines.append(f"Not contained: {', '.join(x.uncontained)}.")
    if report.copies:
        lines += ["", "| Copy | Kind | Creator | When | Rows | State | Where |", "|---|---|---|---|---|---|---|"]
        for c in report.copies:
            where = c.quarantined_as or c.where or "—"
            lines.append(f"| `{c.id}` | {c.kind.value} | {_cell(c.creator or '—')} | {_when(c.created_at)} | "
                         f"{c.rows if c.rows is not None else '—'} | {c.state} | {_cell(where)} |")
    return lines


def _span(opened: datetime | None, closed: datetime | None, oldest: datetime) -> str:
    start = _when(opened) if opened else f"before {_when(oldest)}"
    return f"{start} → {_when(closed) if closed else 'access gone'}"


def _origins(report: ReportInput) -> list[str]:
    """When and how the data became readable, path by path (none before origins were derived)."""
    x, doc = report.status.containment.origins, report.origins
    if x is None:
        return []
    lines = ["", "## How the data became readable", ""]
    if doc is not None and doc.headline is not None:
        h = doc.headline
        lines.append(_cell(h.sentence()[:1].upper() + h.sentence()[1:]) + (
            f"; for {h.duration_seconds / 86400:.1f} days" if h.duration_seconds is not None else "") + ".")
    lines.append(f"{x.paths} paths: {x.logged} opened in the statement log, {x.before_log} open before its oldest "
                 f"line ({_when(x.oldest_line)}), {x.unknown} of unknown origin; {x.unparsed} statements could not "
                 f"be read; document `{x.document.uri}` (`{x.document.sha256}`).")
    if doc is not None:
        lines += ["", "| Path | Company-wide | Origin | Open | Opened by | Statement |", "|---|---|---|---|---|---|"]
        for p in sorted(doc.paths, key=lambda p: (not p.company_wide, p.id)):
            for i in p.intervals:
                by = i.opened_by
                who = f"{by.user}" + (f" as {by.role}" if by.role != by.user else "") if by else "—"
                lines.append(f"| {_cell(p.describe())} | {'yes' if p.company_wide else 'no'} | {p.origin} | "
                             f"{_span(i.opened_at, i.closed_at, doc.oldest_line)} | {_cell(who)} | "
                             f"{_cell(by.statement[:200]) if by else '—'} |")
    return lines


def render_markdown(report: ReportInput) -> str:
    """The report as Markdown: outcome, time to contain, exposure scope, evidence, review, approvals,
    timeline."""
    s = report.status
    c = s.containment
    lines: list[str] = [f"# Pause report: {s.program}", ""]
    lines += [
        f"- **Incident:** {s.incident_id}",
        f"- **Outcome:** {s.phase.value}",
        f"- **Reason:** {_cell(s.reason)}",
        f"- **Severity:** {s.severity.value}",
        f"- **Commander:** {s.commander}",
        f"- **Paused at:** {_when(s.started_at)}",
    ]
    if c.started_at and c.contained_at:
        lines.append(
            f"- **Time to contain:** {(c.contained_at - c.started_at).total_seconds():.1f} s "
            f"(contained at {_when(c.contained_at)})"
        )
    if c.started_at and c.access_gone_at:
        verified = (
            f"; verified {(c.access_verified_at - c.started_at).total_seconds():.1f} s "
            f"(at {_when(c.access_verified_at)})" if c.access_verified_at else "; not verified"
        )
        lines.append(
            f"- **Access gone:** {(c.access_gone_at - c.started_at).total_seconds():.1f} s "
            f"(at {_when(c.access_gone_at)}){verified}"
        )
    lines += [
        "",
        "## Containment",
        "",
        f"- Agents halted: {c.agents.halted} of {c.agents.total} "
        f"({c.agents.waived} waived, {c.agents.not_found} not found); program switch "
        f"{'off' if c.agents.switch_off else 'ON'}",
    ]
    if c.agents.switch_off_at is not None:
        lines.append(f"- Data stopped: {describe_data_stop(c.data_stop, c.agents.switch_off_at)}")
    lines.append("")

    lines += [
        "## Exposure scope",
        "",
        "| Dataset | Roles with access | Grants recorded | Revoke statements | Verified | Residual | Scope digest |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in c.datasets:
        residual = f"{d.residual_count}" + (" (waived)" if d.dataset in c.residual_waived else "")
        lines.append(
            f"| {_cell(d.dataset)} | {d.roles_with_access} | {d.grants_recorded} | {d.revoked} | "
            f"{'yes' if d.verified else 'no'} | {residual} | `{d.scope.sha256}` |"
        )
    if c.exposure is not None:
        x = c.exposure
        lines += [
            "",
            f"Who read the data in the exposure window: {x.readers} roles read {x.objects} objects in "
            f"{x.statements} statements ({x.failed_reads} refused); report `{x.report.uri}` (`{x.report.sha256}`).",
        ]
    lines += _origins(report)
    lines += _copies(report)
    lines += break_glass_lines(report)
    lines += ["", "## Evidence", "", "| Source | Window | Records | Manifest digest |", "|---|---|---|---|"]
    for e in c.evidence:
        lines.append(
            f"| {_cell(e.source)} | {_when(e.window_start)} → {_when(e.window_end)} | "
            f"{e.bundle.records} | `{e.bundle.sha256}` |"
        )
    lines += [
        "",
        "Every bundle and document the pause recorded, by the digest verification compares it with "
        f"(`pausegate evidence audit {s.program} --incident {s.incident_id}`; offline, `--report` with this "
        "report's JSON, which then is the root of trust):",
        "",
        f"- Signing key fingerprint: `{report.evidence_signing_key_sha256 or 'not recorded'}`",
        "",
        "| Key | Kind | What | SHA-256 |",
        "|---|---|---|---|",
    ]
    for anchor in anchors_of(s):
        lines.append(f"| `{_cell(anchor.key)}` | {anchor.kind} | {_cell(anchor.what)} | `{anchor.sha256}` |")
    if plants := plants_of(s):
        # a name someone else wrote first is evidence of an insider: said here, never its content
        lines += ["", "Planted at the pause's evidence names before the store wrote there (the evidence went under "
                  "fresh names; these are not evidence, and were kept):", "",
                  "| Name | Kind | Bytes | SHA-256 |", "|---|---|---|---|"]
        lines += [f"| `{_cell(p.name)}` | {p.kind} | {p.size_bytes} | `{p.sha256 or '—'}` |" for p in plants.values()]

    lines += ["", "## Review", "", "| Item | Completed by | At | Evidence |", "|---|---|---|---|"]
    for item in s.checklist:
        evidence = ", ".join(f"{e.name}: {e.uri}" for e in item.evidence) or "—"
        lines.append(
            f"| {_cell(item.title)} (`{item.id}`) | {item.completed_by or 'not completed'} | "
            f"{_when(item.completed_at)} | {_cell(evidence)} |"
        )

    lines += ["", "## Resume plan", ""]
    if s.plan is None:
        lines.append("No plan was approved.")
    else:
        plan = s.plan.plan
        lines += [
            f"- Proposed by {s.plan.proposed_by} at {_when(s.plan.proposed_at)}, "
            f"digest `{s.plan.plan_digest}`",
            f"- Agents: {plan.agents.mode}"
            + (f" ({len(plan.agents.agent_ids)} listed)" if plan.agents.mode == "listed" else ""),
        ]
        if plan.summary:
            lines.append(f"- Summary: {_cell(plan.summary)}")
        for condition in plan.conditions:
            lines.append(f"- Condition: {_cell(condition)}")
        for decision in plan.copies:
            how = (f"purge with data action {decision.data_action}" if decision.action == "purge"
                   else decision.action.replace("_", " "))
            lines.append(f"- **Risk:** copy `{decision.copy_id}` left as it is (waived): {_cell(decision.reason)}"
                         if decision.action == "waive" else f"- Copy `{decision.copy_id}`: {how}")
        if plan.grants:
            lines += ["", "| Dataset | Role | Table | Privileges | Columns |", "|---|---|---|---|---|"]
            for g in plan.grants:
                lines.append(
                    f"| {g.dataset} | {g.role} | {g.table} | {', '.join(g.privileges)} | "
                    f"{', '.join(g.columns) if g.columns else 'all'} |"
                )

    lines += ["", "## Approvals", ""]
    votes = [("approved", a) for a in s.approvals] + [
        ("voted to decommission", a) for a in s.decommission_approvals
    ]
    if not votes:
        lines.append("None.")
    if s.signoff is not None and s.approvals:
        ring = s.signoff.ring
        lines.append(f"Key ring pinned when the pause started: {len(ring.keys) if ring else 0} enrolled keys "
                     f"(enrollment log line {ring.log_lines if ring else 0}).")
    for what, a in votes:
        lines.append(
            f"- {a.actor_id} ({a.role}) {what} at {_when(a.at)}"
            + (f", digest `{a.digest}`" if what == "approved" else "")
            + (f", {signed_by(a)}" if what == "approved" and s.signoff is not None else "")
            + (f": {_cell(a.comment)}" if a.comment else "")
        )

    if report.restore or report.resume:
        lines += ["", "## Resumed", ""]
        for r in report.restore:
            lines.append(
                f"- {r.dataset}: {r.granted} grants restored, verified {'yes' if r.verified else 'NO'}"
                + (f"; missing {', '.join(r.missing)}" if r.missing else "")
            )
        if report.resume:
            lines.append(
                f"- Program switch: {'on' if report.resume.switch_on else 'off'}; agents collecting again: "
                f"{report.resume.collecting} (resumed one by one: {report.resume.resumed}); "
                f"{report.resume.unconfirmed} resume when they return"
            )

    if s.conditions is not None:
        lines += ["", "## Conditions of the resume", ""]
        lines += conditions_lines(s.conditions)

    lines += ["", "## Timeline", "", "| At | Actor | Action | Detail |", "|---|---|---|---|"]
    for entry in s.timeline:
        action = entry.action if entry.accepted else f"{entry.action} (refused)"
        lines.append(
            f"| {_when(entry.at)} | {_cell(entry.actor)} | {_cell(action)} | {_cell(entry.detail)} |"
        )
    if s.timeline_archived:
        lines += [
            "",
            "Earlier timeline entries are archived as evidence: "
            + ", ".join(f"{r.uri} (`{r.sha256[:12]}`)" for r in s.timeline_archived),
        ]
    lines.append("")
    return "\n".join(lines)
