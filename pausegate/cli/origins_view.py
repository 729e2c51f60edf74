"""How the exposure's origins look to people: one line of the status, a table of the paths (with
``--scope``) and the derived cause beside the checklist. Every value goes in as literal text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from pausegate.api.models import PauseView
from pausegate.cli.output import add_row, line, table, when
from pausegate.models.origins import OriginDocument, OriginSummary


def _days(seconds: float | None) -> str:
    return "" if seconds is None else f" · exposed for {seconds / 86400:.1f} days"


def summary_text(x: OriginSummary) -> str:
    """Readable company-wide since when, for how long, and how many paths the log dates."""
    if x.readable_since is not None:
        since = f"company-wide since {x.readable_since:%Y-%m-%d %H:%M:%S} UTC"
    elif x.since_before_log:
        since = f"company-wide since before {x.oldest_line:%Y-%m-%d %H:%M:%S} UTC (the oldest line of the log)"
    else:
        since = "no company-wide path"
    return (f"{since}{_days(x.duration_seconds)} · {x.paths} paths: {x.logged} opened in the log, "
            f"{x.before_log} before it, {x.unknown} of unknown origin")


def document_of(view: PauseView) -> OriginDocument | None:
    """The sealed origin document the API returned with ``?scope=true``, if it reads as one."""
    if view.origins is None:
        return None
    try:
        return OriginDocument.model_validate(view.origins)
    except ValidationError:
        return None


def derived_cause(view: PauseView) -> Text | None:
    """The cause the statement log shows, said beside the checklist (whatever a reviewer attaches)."""
    document = document_of(view)
    if document is None or document.headline is None:
        return None
    h = document.headline
    return line(("Derived cause (statement log): ", "bold"), h.sentence(), _days(h.duration_seconds),
                *((" · statement: ", h.statement[:200]) if h.statement else ()))


def _span(opened: datetime | None, closed: datetime | None, oldest: datetime) -> str:
    return f"{when(opened) if opened else 'before ' + when(oldest)} → {when(closed) if closed else 'access gone'}"


def origins_table(view: PauseView) -> Table | None:
    """Each path and when it was open, company-wide paths first (with --scope)."""
    document = document_of(view)
    if document is None:
        return None
    shown = table(line("How the data became readable"), ("path", "origin", "open", "by", "from", "statement"))
    rows: list[tuple[Any, ...]] = []
    for p in sorted(document.paths, key=lambda p: (not p.company_wide, p.id)):
        for i in p.intervals:
            by = i.opened_by
            rows.append((line((p.describe(), "red")) if p.company_wide else line(p.describe()), p.origin,
                         _span(i.opened_at, i.closed_at, document.oldest_line),
                         (by.user + (f" as {by.role}" if by.role != by.user else "")) if by else "—",
                         (by.client or "—") if by else "—", by.statement[:120] if by else "—"))
    for row in rows:
        add_row(shown, *row)
    return shown
