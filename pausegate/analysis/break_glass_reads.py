"""Who saw what through the pause's break-glass grants, from the documents the pause recorded.

Each ended grant's reads were derived over its sealed statements and stored as a document of their
own (``break-glass/reads/<grant>``); the grant's end recorded its reference and digest in the pause's
state. Here those documents are read back exactly as recorded (``read_recorded``: that digest, that
version) and their entries labelled break-glass with the grant, its holder and what it gave: nothing
is derived again, and nothing new enters workflow history.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from pausegate.analysis.who_saw_what import WhoSawWhat
from pausegate.errors import EvidenceError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.models.break_glass import Grant
from pausegate.models.break_glass_reads import BreakGlassRead
from pausegate.models.state import PauseState


def given(grant: Grant) -> list[str]:
    """What the grant gave, as a reviewer reads it: each table (its columns where only some), each copy."""
    tables = [f"{t.table}({', '.join(t.columns)})" if t.columns else t.table for t in grant.tables]
    return tables + [f"copy {c}" for c in grant.copies]


def entries_of(grant: Grant, document: Any, sha256: str) -> list[BreakGlassRead]:
    """The grant's who-saw-what entries, labelled; a document that is not this grant's reads is refused."""
    if not isinstance(document, dict) or document.get("kind") != "break-glass" \
            or document.get("grant") != grant.id or document.get("role") != grant.role:
        raise EvidenceError(f"break-glass reads of grant {grant.id}: the recorded document is not this grant's reads")
    try:
        report = WhoSawWhat.model_validate(document.get("who_saw_what"))
    except ValidationError as exc:
        raise EvidenceError(f"break-glass reads of grant {grant.id}: not a who-saw-what document "
                            f"({exc.error_count()} problems)") from exc
    return [BreakGlassRead(grant=grant.id, holder=grant.holder, role=grant.role, dataset=grant.dataset,
                           tables=given(grant), object=e.object, path=e.path, reads=e.reads, failed=e.failed,
                           first_at=e.first_at, last_at=e.last_at, document_sha256=sha256)
            for e in report.for_user(grant.role)]


async def break_glass_reads(store: EvidenceStore, state: PauseState) -> list[BreakGlassRead]:
    """Every ended grant's reads, grant by grant (``EvidenceError`` if a document is not the recorded one)."""
    out: list[BreakGlassRead] = []
    for grant in state.break_glass.grants if state.break_glass is not None else []:
        ref = grant.closed.reads_report if grant.closed is not None else None
        if ref is not None:
            out.extend(entries_of(grant, await read_recorded(store, ref), ref.sha256))
    return out
