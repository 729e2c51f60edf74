"""The report's break-glass section: each grant (who, what, why, approved by whom, how it ended, its
sealed statements and reads, its review) and the standing exceptions beside them."""

from __future__ import annotations

from datetime import datetime

from pausegate.models.steps import ReportInput


def _cell(text: object) -> str:
    # A pipe or newline in a reason would break the table it sits in.
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def break_glass_lines(report: ReportInput) -> list[str]:
    """Nothing for a pause without grants or standing exceptions (its report stays as it was)."""
    s = report.status
    grants = s.break_glass.grants if s.break_glass is not None else []
    if not grants and not report.standing:
        return []
    lines = ["", "## Break-glass access during the pause", ""]
    if grants:
        reviewed = {i.id: i for i in s.checklist}
        lines += ["| Grant | Holder | Tables | Reason | Approved by | Window | Ended by | Sessions ended | "
                  "Statements sealed | Reads | Reviewed by |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in grants:
            c = g.closed
            item = reviewed.get(g.review_item)
            tables = ", ".join(t.table + (f" ({', '.join(t.columns)})" if t.columns else "") for t in g.tables)
            window = f"{_when(c.opened_at)} to {_when(c.closed_at)}" if c is not None and c.opened else g.status
            sealed = f"{c.statements} (`{c.evidence.sha256}`)" if c is not None and c.evidence is not None else "—"
            lines.append(
                f"| {g.id} | {_cell(g.holder)} | {_cell(tables)} | {_cell(g.reason)} | "
                f"{_cell(g.approved_by or ('emergency self-grant' if g.emergency else '—'))} | {window} | "
                f"{_cell(c.ended_by) if c is not None else '—'} | {c.sessions_terminated if c is not None else '—'} | "
                f"{sealed} | {c.reads if c is not None else '—'} | "
                f"{_cell(item.completed_by) if item is not None and item.completed_by else 'not reviewed'} |")
    if report.standing:
        lines += ["", "Standing exceptions (the runbook's static break-glass roles, kept by containment):", "",
                  "| Dataset | Role | Reads in the window | Refused | Tables read |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(x.dataset)} | {_cell(x.role)} | {'not derived' if x.reads is None else x.reads} | "
                  f"{x.failed} | {_cell(', '.join(x.objects) or '—')} |" for x in report.standing]
    return lines
