"""Finding and containing copies of the dataset in the database's catalog (the log side is an
analysis of sealed evidence: ``pausegate.analysis.copies``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from temporalio import activity

from activities.heartbeat import running
from pausegate.connectors.postgres.copies_catalog import (
    DatasetLocation,
    find_by_fingerprint,
    find_foreign_tables,
    find_publications,
    find_subscribed_tables,
    resolve,
)
from pausegate.connectors.postgres.quarantine import contain
from pausegate.errors import TargetUnavailableError
from pausegate.models.copies import (
    ContainCopiesInput,
    CopiesFound,
    CopyContainment,
    FindCatalogCopiesInput,
    FindCopiesElsewhereInput,
)

CONNECT_TIMEOUT_S = 10


class CopiesActivities:
    """Activities over copies of the dataset, on connections chosen by name (``dsn_of``: the
    deployment's DSN for a connection name)."""

    def __init__(self, dsn_of: Callable[[str], str]) -> None:
        self._dsn_of = dsn_of

    @asynccontextmanager
    async def _connect(self, name: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            conn = await psycopg.AsyncConnection.connect(self._dsn_of(name), autocommit=True,
                                                         connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise TargetUnavailableError(f"connection {name}: {exc}") from None
        async with conn:
            yield conn

    @activity.defn(name="find_catalog_copies")
    async def find_catalog_copies(self, input: FindCatalogCopiesInput) -> CopiesFound:
        """The log's copies as they stand in the catalog, then publications carrying the dataset or a
        copy, then tables whose rows match the dataset's fingerprint."""
        async with running() as progress, self._connect(input.connection) as conn:
            tables = [t if "." in t else f"{input.schema_name}.{t}" for t in input.tables]
            resolved = [await resolve(conn, c) for c in input.copies]
            progress.report("resolved", len(resolved))
            carried = [*tables, *(c.qualified for c in resolved if c.qualified and c.state != "gone")]
            publications = await find_publications(conn, [t for t in carried if t])
            known = [c.qualified for c in resolved if c.qualified]
            fingerprinted = await find_by_fingerprint(conn, tables, skip=[k for k in known if k],
                                                      since_xid=input.since_xid)
            return CopiesFound(copies=[*resolved, *publications, *fingerprinted])

    @activity.defn(name="find_copies_elsewhere")
    async def find_copies_elsewhere(self, input: FindCopiesElsewhereInput) -> CopiesFound:
        """On another server the deployment names: foreign tables pointing at the dataset, and tables
        its subscriptions to the found publications fill."""
        async with running(), self._connect(input.connection) as conn:
            location = DatasetLocation(hosts=frozenset(input.hosts), port=input.port, dbname=input.dbname)
            found = await find_foreign_tables(conn, server=input.connection, location=location, tables=input.tables)
            if input.publications:
                found += await find_subscribed_tables(conn, server=input.connection, location=location,
                                                      publications=input.publications)
            return CopiesFound(copies=found)

    @activity.defn(name="contain_copies")
    async def contain_copies(self, input: ContainCopiesInput) -> list[CopyContainment]:
        """Contain each copy on the connection holding it; idempotent, each verified by the database."""
        async with running() as progress, self._connect(input.connection) as conn:
            done: list[CopyContainment] = []
            for n, copy in enumerate(input.copies, 1):
                done.append(await contain(conn, copy, dataset_tables=input.dataset_tables,
                                          break_glass=input.break_glass_roles))
                progress.report("contained", n, len(input.copies))
            return done
