"""Who saw what through break-glass grants as the console shows it to reviewers.

The reads live only in each ended grant's sealed document; the pause's state holds its reference and
digest. The console reads them as the API's ``?scope=true`` does (``pausegate.analysis.break_glass_reads``:
the document recorded, checked against its digest, this grant's), and only for a view the API did not
redact. A document is immutable under its digest, so one read serves every page and live update.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError

from pausegate.analysis.break_glass_reads import entries_of
from pausegate.api.models import PauseView
from pausegate.errors import EvidenceError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.models.break_glass_reads import BreakGlassRead

log = structlog.get_logger(__name__)

KEPT_GRANTS = 256
"""Grants' reads kept read (a few per pause someone watches; each a few KiB)."""


@dataclass(frozen=True)
class GlassReads:
    """The ended grants' reads for a reviewer's page; ``unreadable`` names the grants whose recorded
    document could not be read as the recorded one (nothing of those is shown)."""

    entries: list[BreakGlassRead]
    unreadable: list[str] = field(default_factory=list)


_kept: OrderedDict[tuple[str, str, str | None, str], list[BreakGlassRead]] = OrderedDict()


async def glass_reads(store: EvidenceStore, view: PauseView) -> GlassReads | None:
    """The reads of every ended grant for a view the API shows unredacted (None: redacted, or no grant
    has recorded its reads yet)."""
    if view.redacted or view.break_glass is None:
        return None
    entries: list[BreakGlassRead] = []
    unreadable: list[str] = []
    recorded = False
    for grant in view.break_glass.grants:
        ref = grant.closed.reads_report if grant.closed is not None else None
        if ref is None:
            continue
        recorded = True
        key = (ref.uri, ref.sha256, ref.version_id, grant.id)
        kept = _kept.get(key)
        if kept is None:
            try:
                kept = entries_of(grant, await read_recorded(store, ref), ref.sha256)
            except (EvidenceError, ValidationError, OSError) as exc:
                log.warning("break_glass_reads_unreadable", pause=view.program, grant=grant.id,
                            kind=type(exc).__name__)
                unreadable.append(grant.id)
                continue
            _kept[key] = kept
            while len(_kept) > KEPT_GRANTS:
                _kept.popitem(last=False)
        entries.extend(kept)
    return GlassReads(entries, unreadable) if recorded else None
