"""The exposure's derived cause as the console shows it to reviewers.

The names in it (who ran the statement that opened the data, the path it opened) live only in the
sealed origin document, never in the pause's state or history. The console reads that document as the
API's ``GET /v1/pauses/{program}?scope=true`` does: the one the pause recorded, checked against its
digest, and only for a view the API did not redact (a caller without a review role sees no reference
to it). A document is immutable under its digest, so one read serves every page and live update that
names the same reference.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from pausegate.api.models import PauseView
from pausegate.errors import PausegateError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.models.evidence import EvidenceRef
from pausegate.models.origins import CAUSE_ITEM, Headline, OriginDocument

log = structlog.get_logger(__name__)

KEPT_DOCUMENTS = 32
"""Origin documents kept read (one per pause someone watches; each is a few KiB to a few MiB)."""


@dataclass(frozen=True)
class DerivedCause:
    """What the origin document says caused the exposure, for a reviewer's page.

    ``headline`` is the earliest company-wide opening (None: the document shows no company-wide path);
    ``unreadable`` says the pause recorded a document that could not be read as the recorded one, and
    then nothing of it is shown."""

    headline: Headline | None
    unreadable: bool = False
    item: str = CAUSE_ITEM


class _Kept:
    """Documents read, by the reference the pause recorded (location, digest, version): bounded, oldest out."""

    def __init__(self, limit: int = KEPT_DOCUMENTS) -> None:
        self._limit = limit
        self._documents: OrderedDict[tuple[str, str, str | None], OriginDocument] = OrderedDict()

    async def read(self, store: EvidenceStore, ref: EvidenceRef) -> OriginDocument:
        key = (ref.uri, ref.sha256, ref.version_id)
        document = self._documents.get(key)
        if document is None:
            document = OriginDocument.model_validate(await read_recorded(store, ref))
            self._documents[key] = document
            while len(self._documents) > self._limit:
                self._documents.popitem(last=False)
        return document


_kept = _Kept()


async def derived_cause(store: EvidenceStore, view: PauseView) -> DerivedCause | None:
    """The derived cause for a view the API shows unredacted (None for a redacted view, or before the
    pause derived the origins). A document that does not read as the recorded one, or a store that cannot
    be read now, fails closed: ``unreadable``, nothing of it shown (and read again on the next page)."""
    summary = view.containment.origins
    if view.redacted or summary is None:
        return None
    try:
        document = await _kept.read(store, summary.document)
    except (PausegateError, ValidationError, OSError) as exc:  # not the recorded one, or the store away
        log.warning("origin_document_unreadable", pause=view.program, kind=type(exc).__name__)
        return DerivedCause(headline=None, unreadable=True)
    return DerivedCause(headline=document.headline)
