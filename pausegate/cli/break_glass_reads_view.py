"""Who saw what through break-glass grants, as ``pausegate status --scope`` shows it: one row an object
a grant's role read, labelled break-glass with the grant, its holder and what it gave. Every value goes
in as literal text."""

from __future__ import annotations

from rich.table import Table

from pausegate.api.models import PauseView
from pausegate.cli.output import add_row, line, table, when


def break_glass_reads_table(view: PauseView) -> Table | None:
    """The ended grants' reads the API read from their sealed documents (with ``--scope``)."""
    if not view.break_glass_reads:
        return None
    shown = table(line("Who saw what: break-glass reads"),
                  ("who", "grant", "holder", "gave", "object", "reads", "refused", "first", "last"))
    for r in view.break_glass_reads:
        add_row(shown, line((r.kind, "yellow")), r.grant, r.holder, ", ".join(r.tables), r.object, str(r.reads),
                str(r.failed), when(r.first_at), when(r.last_at))
    return shown
