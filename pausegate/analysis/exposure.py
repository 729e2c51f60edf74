"""What the evidence activities need around the database's log: the scope the log is filtered
with, who saw what from the sealed lines, and whose data was exposed.

The database is asked through the dataset access connector when it offers these methods
(``ExposureDatabase``; ``PostgresAccess`` does); without it, the recorded scopes alone serve.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import structlog
from pydantic import ValidationError

from pausegate.analysis.statement_reads import ReadScope
from pausegate.analysis.who_saw_what import (
    Attribution,
    BuilderProgress,
    Covers,
    DatasetPaths,
    WhoSawWhat,
    WhoSawWhatBuilder,
    read_scope,
)
from pausegate.errors import ConfigError
from pausegate.evidence.interface import EvidenceStore, read_recorded
from pausegate.evidence.layout import data_subjects_key, exposure_checkpoint_key, exposure_key, scope_key
from pausegate.evidence.squatting import is_alternate_of
from pausegate.models.access import ExposureScope, ReadPath
from pausegate.models.evidence import EvidenceRef
from pausegate.models.runbook import DatasetSpec
from pausegate.models.state import ExposureSummary

log = structlog.get_logger(__name__)

READ_BATCH = 2000  # sealed records read from the store per trip to a worker thread
CHECKPOINT_RECORDS = 200_000  # a retry repeats at most this many records' analysis
CHECKPOINT = "checkpoint"
_DIGITS = frozenset("0123456789")
_BASE_KINDS = frozenset({"table", "partitioned_table", "foreign_table", "view", "materialized_view"})


class ScopedLog(Protocol):
    """A database log source that can filter with a read scope and wait for a fence
    (``connectors.audit.pglog.PostgresLogSource``)."""

    def scoped(self, scope: ReadScope | None) -> Self: ...

    def fenced(self, run: Callable[[str], Awaitable[None]]) -> Self: ...


S = TypeVar("S", bound=ScopedLog)


@runtime_checkable
class ExposureDatabase(Protocol):
    """What the exposure needs of the database beside revoking (``PostgresAccess``)."""

    async def read_paths(self, spec: DatasetSpec) -> list[ReadPath]: ...

    async def data_subjects(
        self, spec: DatasetSpec, column: str, time_column: str | None, until: datetime
    ) -> tuple[list[str], list[str]]: ...

    async def log_fence(self, marker: str) -> None: ...


class Exposure:
    """The store and the databases, by connection name."""

    def __init__(self, store: EvidenceStore, access: Callable[[str], object] | None = None) -> None:
        self._store = store
        self._access = access

    def database(self, connection: str | None) -> ExposureDatabase | None:
        if self._access is None or connection is None:
            return None
        db = self._access(connection)
        return db if isinstance(db, ExposureDatabase) else None

    def recorded_scope(self, pause_key: str, dataset: str) -> ExposureScope | None:
        key = scope_key(pause_key, dataset)
        if self._store.get(key) is None:
            return None
        return ExposureScope.model_validate(self._store.read_json(key))

    async def paths(self, pause_key: str, spec: DatasetSpec) -> DatasetPaths:
        """The dataset's read paths: the scope recorded before revoking (once it is), and what the
        catalog says now (views, routines; revoking changes neither). A dataset whose connection the
        deployment lacks has no live paths: sealing must not wait on the step that is blocked on it."""
        try:
            db = self.database(spec.connection)
        except ConfigError as exc:
            log.warning("read_paths_unavailable", dataset=spec.name, error=str(exc))
            db = None
        return DatasetPaths(
            name=spec.name, schema=spec.schema_name, tables=tuple(spec.tables),
            recorded=await asyncio.to_thread(self.recorded_scope, pause_key, spec.name),
            live=tuple(await db.read_paths(spec)) if db is not None else (),
        )

    # ---------------------------------------------------------- sealing

    async def database_source(self, source: S, pause_key: str, connection: str | None,
                              datasets: Sequence[DatasetSpec], tables: Sequence[str]) -> S:
        """``source`` filtering with the datasets' read scope, and fenced on the server's log.

        Without datasets (a pause started before they were passed) they are the tables grouped by
        schema; with no tables either (a whole-schema dataset), every statement is kept."""
        specs = list(datasets) or _from_tables(tables, connection)
        scope = read_scope([await self.paths(pause_key, d) for d in specs])[0] if specs else None
        if scope is None:
            log.warning("pg_log_unfiltered", reason="no dataset or table to filter on: every statement is sealed")
        filtered = source.scoped(scope)
        db = self.database(connection)
        return filtered.fenced(db.log_fence) if db is not None else filtered

    # ---------------------------------------------------------- the report

    def _scopes_under(self, pause_key: str) -> list[ExposureScope]:
        """Every scope recorded under the pause (when the datasets were not passed): the local store's
        directory listing; another store gives none."""
        document_path = getattr(self._store, "document_path", None)
        if document_path is None:
            return []
        directory = document_path(scope_key(pause_key, "x")).parent
        names = sorted(p.name.removesuffix(".json") for p in directory.glob("*.json"))
        return [s for s in (self.recorded_scope(pause_key, n) for n in names) if s is not None]

    async def _dataset_paths(self, pause_key: str, datasets: Sequence[DatasetSpec]) -> list[DatasetPaths]:
        if datasets:
            return [await self.paths(pause_key, d) for d in datasets]
        out = []
        for scope in self._scopes_under(pause_key):
            own = sorted({o.name.rpartition(".")[2] for o in scope.object_details
                          if o.kind in _BASE_KINDS and o.name.rpartition(".")[0] == scope.schema_name})
            out.append(DatasetPaths(name=scope.dataset, schema=scope.schema_name, tables=tuple(own), recorded=scope))
        return out

    async def who_saw_what(self, pause_key: str, bundles: Iterable[str], datasets: Sequence[DatasetSpec],
                           heartbeat: Callable[[str], None], *, budget: int | None = None,
                           checkpoint: EvidenceRef | None = None,
                           checkpointed: Callable[[EvidenceRef], None] = lambda _: None,
                           every: int = CHECKPOINT_RECORDS,
                           covers: Covers | None = None) -> tuple[WhoSawWhat, EvidenceRef]:
        """Who saw what, re-derived from the sealed lines; stored once per pause (a retry reuses it).

        Every ``every`` records the builder's progress is stored as a checkpoint and handed to
        ``checkpointed``; given the one a failed attempt recorded (``checkpoint``: exactly that document),
        the work goes on from there instead of from the first line."""
        key = exposure_key(pause_key)
        if (ref := await asyncio.to_thread(self._store.get, key)) is not None:
            return WhoSawWhat.model_validate(await asyncio.to_thread(self._store.read_json, key)), ref
        scope, who = read_scope(await self._dataset_paths(pause_key, datasets))
        resume = (BuilderProgress.model_validate(await read_recorded(self._store, checkpoint))
                  if checkpoint is not None else None)

        async def save(progress: BuilderProgress) -> None:
            checkpointed(await asyncio.to_thread(self._store.put_json,
                                                 exposure_checkpoint_key(pause_key, progress.records),
                                                 progress.model_dump(mode="json")))

        report = await build_who_saw_what(scope, who, (self._store.iter_bundle(b) for b in bundles), heartbeat,
                                          budget=budget, resume=resume, save=save, every=every, covers=covers)
        return report, await asyncio.to_thread(self._store.put_json, key, report.model_dump(mode="json"))

    async def data_subjects(self, pause_key: str, datasets: Sequence[DatasetSpec],
                            until: datetime | None) -> tuple[int, EvidenceRef] | None:
        """The people whose rows were readable in the window, for datasets whose runbook names a
        data-subject column: stored once per pause, owner-only; (count, ref)."""
        key = data_subjects_key(pause_key)
        if (ref := await asyncio.to_thread(self._store.get, key)) is not None:
            return int((await asyncio.to_thread(self._store.read_json, key))["count"]), ref
        until = until or datetime.now(UTC)
        parts: list[dict[str, Any]] = []
        everyone: set[str] = set()
        for d in datasets:
            if d.data_subjects is None:
                continue
            try:
                db = self.database(d.connection)
            except ConfigError as exc:
                # A dataset the commander waived while its connection was missing: said, not counted.
                parts.append({"dataset": d.name, "column": d.data_subjects.column, "not_counted": str(exc)})
                continue
            if db is None:
                continue
            tables, people = await db.data_subjects(d, d.data_subjects.column, d.data_subjects.collected_at, until)
            everyone.update(people)
            parts.append({"dataset": d.name, "column": d.data_subjects.column, "tables": tables,
                          "count": len(people), "subjects": people})
        if not parts:
            return None
        document = {"until": until.astimezone(UTC).isoformat(), "count": len(everyone),
                    "subjects": sorted(everyone), "datasets": parts}
        return len(everyone), await asyncio.to_thread(self._store.put_json, key, document)


async def build_who_saw_what(scope: Any, who: Attribution, bundles: Iterable[Iterator[dict[str, Any]]],
                             heartbeat: Callable[[str], None] = lambda _: None, *, budget: int | None = None,
                             resume: BuilderProgress | None = None,
                             save: Callable[[BuilderProgress], Awaitable[None]] | None = None,
                             every: int = CHECKPOINT_RECORDS, covers: Covers | None = None) -> WhoSawWhat:
    """Who saw what over the sealed records of ``bundles`` (in sealing order), read off the event loop.

    From ``resume`` on, the records it counted are read (their digests still checked) but not analysed
    again; ``save`` receives the progress every ``every`` records."""
    builder = WhoSawWhatBuilder(scope, who, budget=budget, covers=covers)
    skip = 0
    if resume is not None:
        builder.resume(resume)
        skip = resume.records
    seen, next_save = 0, skip + every
    for n, records in enumerate(bundles):
        while True:
            # a batch ends where skipping ends and where a checkpoint is due
            want = min(READ_BATCH, skip - seen if seen < skip else next_save - seen if save else READ_BATCH)
            batch = await asyncio.to_thread(lambda: list(itertools.islice(records, want)))  # noqa: B023
            if not batch:
                break
            seen += len(batch)
            if seen <= skip:
                continue
            await builder.add(batch)
            if save is not None and seen >= next_save:
                await save(await builder.progress(seen))
                next_save = seen + every
        heartbeat(f"{n + 1} bundles read")
    return await builder.finish()


def checkpoint_detail(ref: EvidenceRef) -> dict[str, Any]:
    """What the activity heartbeats for a checkpoint: its reference only (the content names people)."""
    return {CHECKPOINT: ref.model_dump(mode="json")}


def recorded_checkpoint(details: Iterable[Any], pause_key: str) -> EvidenceRef | None:
    """The checkpoint a failed attempt heartbeated (``checkpoint_detail``), if it is one of this pause's
    checkpoints; anything else (another pause's document, a malformed detail) is ignored: the work then
    starts from the first line, which costs time, never correctness."""
    for detail in details:
        if not isinstance(detail, dict) or CHECKPOINT not in detail:
            continue
        try:
            ref = EvidenceRef.model_validate(detail[CHECKPOINT])
        except ValidationError:
            return None
        number = ref.key.rpartition("/")[2].partition(".")[0]
        if len(number) == 12 and set(number) <= _DIGITS and \
                is_alternate_of(ref.key, exposure_checkpoint_key(pause_key, int(number))):
            return ref
        log.warning("checkpoint_ignored", reason="not one of this pause's checkpoints")
        return None
    return None


def summary(report: WhoSawWhat, ref: EvidenceRef, subjects: tuple[int, EvidenceRef] | None) -> ExposureSummary:
    """Counts and references only: the workflow's history holds no name."""
    return ExposureSummary(
        readers=len(report.users),
        objects=len({e.object for e in report.entries if e.reads}),
        statements=report.statements,
        failed_reads=sum(e.failed for e in report.entries),
        report=ref,
        possible_readers=len(report.possible_users),
        unparsed=report.unparsed,
        over_budget=report.over_budget,
        data_subjects=subjects[0] if subjects else None,
        data_subjects_list=subjects[1] if subjects else None,
    )


def _from_tables(tables: Sequence[str], connection: str | None) -> list[DatasetSpec]:
    by_schema: dict[str, list[str]] = {}
    for t in tables:
        schema, _, name = t.rpartition(".")
        by_schema.setdefault(schema or "public", []).append(name)
    # named for the log only: the name must be a slug, the schema need not be one
    return [DatasetSpec(name=f"t-{schema.replace('_', '-')}"[:63], connection=connection or "unknown",
                        schema=schema, tables=names) for schema, names in sorted(by_schema.items())]
