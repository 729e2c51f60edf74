"""Sealing audit records, the final report and archived timeline entries as evidence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.heartbeat import running
from pausegate.analysis.exposure import Exposure, checkpoint_detail, recorded_checkpoint, summary
from pausegate.analysis.origins import recorded_intervals
from pausegate.analysis.standing_exceptions import recorded_exceptions
from pausegate.connectors.audit.pglog import PostgresLogSource
from pausegate.connectors.interfaces import AuditSource
from pausegate.evidence.anchor import PLANTS, REPORT_FINGERPRINT, plants_of
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.evidence.layout import audit_key, report_key, timeline_key
from pausegate.models.copies import CopiesDocument, listings
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.origins import OriginDocument
from pausegate.models.runbook import DEFAULT_STATEMENT_BUDGET, AuditSourceSpec
from pausegate.models.state import ExposureSummary
from pausegate.models.steps import ArchiveTimelineInput, ExposureReportInput, ReportInput, SnapshotInput

AuditSourceFactory = Callable[[AuditSourceSpec, str, list[str]], AuditSource]
HEARTBEAT_EVERY = 10_000


async def _heartbeating(records: AsyncIterator[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    count = 0
    async for record in records:
        count += 1
        if count % HEARTBEAT_EVERY == 0:
            activity.heartbeat(f"{count} records")
        yield record


async def seal_log(store: EvidenceStore, key: str, source: PostgresLogSource, start: datetime, end: datetime,
                   progress: Callable[[int], None] | None = None) -> tuple[EvidenceRef, int]:
    """Seal a database log's lines from ``start`` to ``end``: (ref, chunks). Where the store takes blocks,
    the lines come serialised from the scanning thread, so sealing does no per-line work."""
    seal_blocks = getattr(store, "seal_blocks", None)
    if seal_blocks is not None:
        sealed: tuple[EvidenceRef, int] = await seal_blocks(key, source.blocks(start, end, progress=progress))
        return sealed
    return await store.seal(key, source.records(start, end))


class EvidenceActivities:
    """Activities over the evidence store and the audit sources."""

    def __init__(self, store: EvidenceStore, sources: AuditSourceFactory,
                 access: Callable[[str], object] | None = None) -> None:
        """``access``: dataset access connectors by connection name (``Connectors.access``): the
        database's log is then filtered with the live read paths, fenced, and data subjects counted."""
        self._store = store
        self._sources = sources
        self._exposure = Exposure(store, access)

    @activity.defn(name="snapshot_audit_source")
    async def snapshot_audit_source(self, input: SnapshotInput) -> SnapshotResult:
        """Seal one source's records of one segment of the exposure window (once per pause and segment)."""
        async with running():
            source = self._sources(input.source, input.program, list(input.tables))
            if isinstance(source, PostgresLogSource):
                # kept: the lines that may show a read of the datasets by any path their scope knows
                source = await self._exposure.database_source(
                    source, input.pause_key, input.source.connection, input.datasets, input.tables)
            key = audit_key(input.pause_key, input.source.name, input.segment)
            if isinstance(source, PostgresLogSource):
                ref, chunks = await seal_log(self._store, key, source, input.window_start, input.window_end,
                                             progress=lambda n: activity.heartbeat(f"{n} log bytes read"))
            else:
                records = _heartbeating(source.records(input.window_start, input.window_end))
                ref, chunks = await self._store.seal(key, records)
            return SnapshotResult(source=input.source.name, window_start=input.window_start,
                                  window_end=input.window_end, bundle=ref, chunks=chunks)

    @activity.defn(name="exposure_report")
    async def exposure_report(self, input: ExposureReportInput) -> ExposureSummary:
        """Who read which dataset table, by which path, how often, first and last time: derived from
        the sealed log lines themselves, so the report is exactly as good as the evidence; and how
        many people's records were readable (the list stays in owner-only evidence)."""
        async with running() as progress:
            # where a failed attempt got to: every heartbeat carries the newest checkpoint's reference
            checkpoint = recorded_checkpoint(activity.info().heartbeat_details, input.pause_key)
            held = [checkpoint_detail(checkpoint)] if checkpoint is not None else []
            # with the origins, a read counts while a path the reader had was open; people up to the last such moment
            intervals, until = (await recorded_intervals(self._store, input.origins) if input.origins is not None
                                else (None, input.window_end))
            until = min(until, input.window_end) if until and input.window_end else until or input.window_end

            def checkpointed(ref: EvidenceRef) -> None:
                held[:] = [checkpoint_detail(ref)]
                progress.report(f"checkpoint after {ref.key.rpartition('/')[2]} records", *held)

            report, ref = await self._exposure.who_saw_what(
                input.pause_key, input.bundles, input.datasets, lambda text: progress.report(text, *held),
                budget=input.statement_budget or DEFAULT_STATEMENT_BUDGET, checkpoint=checkpoint,
                checkpointed=checkpointed, covers=intervals.covers if intervals is not None else None)
            subjects = await self._exposure.data_subjects(input.pause_key, input.datasets, until)
            return summary(report, ref, subjects)

    @activity.defn(name="write_report")
    async def write_report(self, input: ReportInput) -> EvidenceRef:
        """Store the pause's final report."""
        async with running():
            copies = input.status.containment.copies
            if copies is not None:
                # names stay out of history: the report takes them from the sealed document the pause recorded
                sealed = CopiesDocument.model_validate(await read_recorded(self._store, copies.document))
                input = input.model_copy(update={"copies": listings(sealed)})
            origins = input.status.containment.origins
            if origins is not None:
                input = input.model_copy(update={"origins": OriginDocument.model_validate(
                    await read_recorded(self._store, origins.document))})
            if standing := await recorded_exceptions(self._store, input.status):
                input = input.model_copy(update={"standing": standing})
            # a pause with no copies (or origin) document, or no standing exception, writes the report it always wrote
            absent = {name for name, ref in (("copies", copies), ("origins", origins)) if ref is None}
            absent |= set() if standing else {"standing"}
            document = input.model_dump(mode="json", exclude=absent or None)
            # the status lists the digest of every bundle and document the pause recorded; with the
            # key's fingerprint beside it, the report alone anchors the evidence offline
            document["status"] = input.status.as_document()
            document[REPORT_FINGERPRINT] = self._store.signing_key_sha256
            if plants := plants_of(input.status):
                # what someone else wrote first at the pause's evidence names is an incident of its own
                document[PLANTS] = [plant.model_dump(mode="json") for plant in plants.values()]
            return await asyncio.to_thread(self._store.put_json, report_key(input.pause_key), document)

    @activity.defn(name="archive_timeline")
    async def archive_timeline(self, input: ArchiveTimelineInput) -> EvidenceRef:
        """Store older timeline entries so the workflow's state stays bounded."""
        async with running():
            return await asyncio.to_thread(
                self._store.put_json,
                timeline_key(input.pause_key, input.sequence),
                [e.model_dump(mode="json") for e in input.entries],
            )
