"""The report's account of a resume plan's conditions: counts and digests, no names."""

from __future__ import annotations

from pausegate.models.conditions import ResumeConditions


def _text(value: object) -> str:
    # Report lines are Markdown list items: a newline in a problem must not start a new item.
    return str(value).replace("\r", " ").replace("\n", " ")


def conditions_lines(c: ResumeConditions) -> list[str]:
    """One Markdown list item per condition the resume carried out, and the check before RESUMED."""
    lines: list[str] = []
    if c.profile is not None:
        lines.append(f"- Collection profile: agents capture {', '.join(c.profile) or 'nothing'}")
    for r in c.data_actions:
        column = f".{r.column}" if r.column else ""
        lines.append(f"- Data action {r.index} ({r.kind}) on {r.dataset}.{r.table}{column}: "
                     f"{r.rows_affected} rows, digest `{r.digest[:12]}`")
    if c.consent is not None:
        k = c.consent
        document = f"; list: {k.document.uri} (`{k.document.sha256[:12]}`)" if k.document else ""
        lines.append(f"- Consent: {k.consenting_employees} employees consented; {k.unconsented_employees} did not, "
                     f"their agents left halted ({k.agents_halted} confirmed, {k.agents_pending} when they return)"
                     f"{document}")
    if c.check is not None:
        problems = c.check.problems
        verdict = "hold" if not problems else "do NOT hold: " + "; ".join(_text(p) for p in problems)
        lines.append(f"- Checked before RESUMED: {c.check.agents_collecting} agents collecting; conditions {verdict}")
    return lines
