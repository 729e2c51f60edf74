"""Sealing audit records, the final report and archived timeline entries as evidence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.audit.sources import WhoSawWhatBuilder
from pausegate.connectors.interfaces import AuditSource, EvidenceStore
from pausegate.evidence.layout import audit_key, exposure_key, report_key, timeline_key
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.pause import (
    ArchiveTimelineInput,
    ExposureReportInput,
    ExposureSummary,
    ReportInput,
    SnapshotInput,
)
from pausegate.runbook.model import AuditSourceSpec

AuditSourceFactory = Callable[[AuditSourceSpec, str, list[str]], AuditSource]
HEARTBEAT_EVERY = 10_000


async def _heartbeating(records: AsyncIterator[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    count = 0
    async for record in records:
        count += 1
        if count % HEARTBEAT_EVERY == 0:
            activity.heartbeat(f"{count} records")
        yield record


class EvidenceActivities:
    """Activities over the evidence store and the audit sources."""

    def __init__(self, store: EvidenceStore, sources: AuditSourceFactory) -> None:
        self._store = store
        self._sources = sources

    @activity.defn(name="snapshot_audit_source")
    async def snapshot_audit_source(self, input: SnapshotInput) -> SnapshotResult:
        """Seal one source's records of one segment of the exposure window (once per pause and segment)."""
        async with running():
            source = self._sources(input.source, input.program, list(input.tables))
            key = audit_key(input.pause_key, input.source.name, input.segment)
            records = _heartbeating(source.records(input.window_start, input.window_end))
            ref, chunks = await self._store.seal(key, records)
            return SnapshotResult(source=input.source.name, window_start=input.window_start,
                                  window_end=input.window_end, bundle=ref, chunks=chunks)

    @activity.defn(name="exposure_report")
    async def exposure_report(self, input: ExposureReportInput) -> ExposureSummary:
        """Who read which dataset object, how often, first and last time: computed from the sealed
        bundles themselves, so the report is exactly as good as the evidence."""
        async with running():
            builder = WhoSawWhatBuilder()
            for n, key in enumerate(input.bundles):
                for record in self._store.iter_bundle(key):
                    builder.add(record)
                activity.heartbeat(f"{n + 1} bundles read")
            report = builder.build()
            ref = self._store.put_json(exposure_key(input.pause_key), report.model_dump(mode="json"))
            return ExposureSummary(
                readers=len(report.users),
                objects=len({e.object for e in report.entries}),
                statements=report.statements,
                failed_reads=sum(e.failed for e in report.entries),
                report=ref,
            )

    @activity.defn(name="write_report")
    async def write_report(self, input: ReportInput) -> EvidenceRef:
        """Store the pause's final report."""
        async with running():
            document = input.model_dump(mode="json")
            document["status"] = input.status.as_document()
            return self._store.put_json(report_key(input.pause_key), document)

    @activity.defn(name="archive_timeline")
    async def archive_timeline(self, input: ArchiveTimelineInput) -> EvidenceRef:
        """Store older timeline entries so the workflow's state stays bounded."""
        async with running():
            return self._store.put_json(
                timeline_key(input.pause_key, input.sequence),
                [e.model_dump(mode="json") for e in input.entries],
            )
