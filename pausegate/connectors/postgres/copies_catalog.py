"""Copies of the dataset that a PostgreSQL catalog shows: publications carrying its tables (and the
replication connections reading them), foreign tables on other servers pointing at it, and tables
whose rows match a fingerprint of the dataset's rows. Also: which relation a copy found in the log
is now (an unqualified name, a rename) and how many rows it holds.

Read-only. Every name is passed as a parameter or an identifier, never spliced as text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict

from pausegate.analysis.copies_fingerprint import (
    CANDIDATE_ROWS,
    MAX_SAMPLED_ROWS,
    MAX_VALUE_REPEATS,
    MIN_VALUE_CHARS,
    Fingerprint,
    fingerprint,
    match,
)
from pausegate.models.copies import RELATION_KINDS, Copy, CopyEvidence, CopyKind

QUARANTINE_ROLE = "pausegate_quarantine"
QUARANTINE_SCHEMA = "pausegate_quarantine"
MAX_CANDIDATES = 200  # tables fingerprinted per search
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_RELKIND_WORD = {"r": "TABLE", "p": "TABLE", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}


def quarantine_name(copy: Copy) -> str:
    """The copy's name in the quarantine schema: its own, made unique by its id (63 bytes at most)."""
    suffix = f"__{copy.id[:12]}"
    base = (copy.name or copy.kind.value).encode()[: 63 - len(suffix)].decode("utf-8", "ignore")
    return base + suffix


def _id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


async def _rows(conn: AsyncConnection[Any], query: str | sql.Composable, params: Any = None) -> list[Any]:
    cur = await conn.execute(query, params)  # type: ignore[arg-type]
    return await cur.fetchall()


# ---------------------------------------------------------------- where a copy is now


@dataclass(frozen=True)
class Located:
    oid: int
    relkind: str
    schema: str
    name: str
    owner: str

    @property
    def word(self) -> str:
        """The ALTER keyword for its kind."""
        return _RELKIND_WORD.get(self.relkind, "TABLE")

    @property
    def ident(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))


# The first of the names, in order, that exists: one trip whatever the number of names.
_LOCATE_Q = """
SELECT c.oid, c.relkind::text, n.nspname, c.relname, pg_get_userbyid(c.relowner)
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS w(nsp, rel, i)
JOIN pg_namespace n ON n.nspname = w.nsp JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel
WHERE c.relkind IN ('r', 'p', 'm', 'f')
ORDER BY w.i LIMIT 1
"""


def _names_of(copy: Copy) -> list[tuple[str, str]]:
    """Where a copy may be, in order: already quarantined, as named, each candidate."""
    names = [(QUARANTINE_SCHEMA, quarantine_name(copy))]
    if copy.schema_name and copy.name:
        names.append((copy.schema_name, copy.name))
    return names + [tuple(c.split(".", 1)) for c in copy.candidates]  # type: ignore[misc]


async def locate(conn: AsyncConnection[Any], copy: Copy) -> Located | None:
    """The relation a copy is now: already quarantined, else as named, else the first candidate that exists."""
    names = _names_of(copy)
    found = await _rows(conn, _LOCATE_Q, ([s for s, _ in names], [n for _, n in names]))
    return Located(*found[0]) if found else None


_LOCATE_MANY_Q = """
SELECT DISTINCT ON (w.copy) w.copy, c.oid, c.relkind::text, n.nspname, c.relname, pg_get_userbyid(c.relowner)
FROM unnest(%s::int[], %s::text[], %s::text[]) WITH ORDINALITY AS w(copy, nsp, rel, i)
JOIN pg_namespace n ON n.nspname = w.nsp JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel
WHERE c.relkind IN ('r', 'p', 'm', 'f')
ORDER BY w.copy, w.i
"""


async def locate_many(conn: AsyncConnection[Any], copies: Sequence[Copy]) -> list[Located | None]:
    """``locate`` for each copy, in one trip."""
    index, schemas, names = [], [], []
    for n, copy in enumerate(copies):
        for schema, name in _names_of(copy):
            index.append(n)
            schemas.append(schema)
            names.append(name)
    found = {row[0]: Located(*row[1:]) for row in await _rows(conn, _LOCATE_MANY_Q, (index, schemas, names))}
    return [found.get(n) for n in range(len(copies))]


async def count_rows(conn: AsyncConnection[Any], where: Located) -> int | None:
    """Its rows, counted by the database (None when this role may not read it)."""
    try:
        rows = await _rows(conn, sql.SQL("SELECT count(*) FROM {}").format(where.ident))
    except psycopg.errors.InsufficientPrivilege:
        return None
    return int(rows[0][0])


async def resolve(conn: AsyncConnection[Any], copy: Copy) -> Copy:
    """A copy found in the log as it stands in the catalog: which relation it is, how many rows it holds;
    ``gone`` when no relation by its names exists (dropped, or made in a transaction that rolled back)."""
    if copy.whole_source is not None and copy.rows is None:
        source = await _located(conn, copy.whole_source)
        rows = await count_rows(conn, source[0]) if source is not None else None
        return copy.model_copy(update={"rows": rows, "rows_basis": "source_now" if rows is not None else None})
    if copy.kind not in RELATION_KINDS or copy.state not in ("found", "possible"):
        return copy
    where = await locate(conn, copy)
    if where is None:
        return copy.model_copy(update={"state": "gone", "note": "no such relation in the database now"})
    update: dict[str, Any] = {"rows": await count_rows(conn, where), "rows_basis": "counted"}
    if where.schema != QUARANTINE_SCHEMA:
        update |= {"schema_name": where.schema, "name": where.name}
    return copy.model_copy(update=update)


async def subjects_in(conn: AsyncConnection[Any], copy: Copy, column: str) -> list[str] | None:
    """The people a copy's rows are about (``column``, as the dataset names them); None when the copy is
    not in the database or has no such column."""
    where = await locate(conn, copy)
    if where is None or column not in await _columns(conn, where.oid):
        return None
    return [r[0] for r in await _rows(conn, sql.SQL("SELECT DISTINCT {}::text FROM {} WHERE {} IS NOT NULL").format(
        sql.Identifier(column), where.ident, sql.Identifier(column)))]


# ---------------------------------------------------------------- publications


_PUBLICATIONS_Q = """
SELECT p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, pt.schemaname, pt.tablename,
       EXISTS (SELECT 1 FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid
               WHERE pn.pnpubid = p.oid AND n.nspname = pt.schemaname)
FROM pg_publication p JOIN pg_publication_tables pt ON pt.pubname = p.pubname
WHERE pt.schemaname || '.' || pt.tablename = ANY(%s::text[])
ORDER BY p.pubname, pt.schemaname, pt.tablename
"""

_REPLICATION_Q = """
SELECT s.slot_name, s.active_pid, r.application_name, r.usename::text, r.client_addr::text
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type = 'logical' AND s.database = current_database()
ORDER BY s.slot_name
"""


async def find_publications(conn: AsyncConnection[Any], tables: Sequence[str]) -> list[Copy]:
    """Publications carrying any of ``tables`` (schema.table: the dataset's, and copies found), with
    the logical replication connections of this database (which of them reads which publication
    the publisher does not record: all are listed)."""
    found: dict[str, tuple[str, bool, list[str], list[str]]] = {}
    for pub, owner, all_tables, schema, table, in_schema in await _rows(conn, _PUBLICATIONS_Q, (list(tables),)):
        how = "for all tables" if all_tables else "tables in schema" if in_schema else "listed"
        entry = found.setdefault(pub, (owner, all_tables, [], []))
        entry[2].append(f"{schema}.{table}")
        entry[3].append(f"{schema}.{table} ({how})")
    if not found:
        return []
    connections = [
        f"slot {slot}" + (f" read by {user or '?'} from {addr or 'local'} ({app or '?'})" if pid else " (idle)")
        for slot, pid, app, user, addr in await _rows(conn, _REPLICATION_Q)
    ]
    return [
        Copy(
            id=_id("publication", pub), kind=CopyKind.PUBLICATION, name=pub, creator=owner, sources=tuple(carried),
            destination="; ".join(connections) or "no replication connection now",
            evidence=(CopyEvidence(source="catalog", fact=f"publication {pub} carries " + ", ".join(facts)),),
            note="publishes every table" if all_tables else None,
        )
        for pub, (owner, all_tables, carried, facts) in sorted(found.items())
    ]


# ---------------------------------------------------------------- foreign tables elsewhere


@dataclass(frozen=True)
class DatasetLocation:
    """How other servers reach the dataset's database: the host names and port the deployment
    knows it by, and its database name."""

    hosts: frozenset[str]
    port: int
    dbname: str


_FOREIGN_Q = """
SELECT n.nspname, c.relname, s.srvname, pg_get_userbyid(c.relowner),
       coalesce(s.srvoptions, '{}'), coalesce(ft.ftoptions, '{}')
FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_foreign_server s ON s.oid = ft.ftserver JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
WHERE w.fdwname = 'postgres_fdw'
ORDER BY 1, 2
"""


def _options(items: Iterable[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items if "=" in item)


async def find_foreign_tables(conn: AsyncConnection[Any], *, server: str, location: DatasetLocation,
                              tables: Sequence[str]) -> list[Copy]:
    """Foreign tables on the server ``conn`` reaches (named ``server`` by the deployment) that read
    any of ``tables`` (schema.table) on the dataset's database."""
    wanted = set(tables)
    out: list[Copy] = []
    for schema, name, srv, owner, srv_opts, ft_opts in await _rows(conn, _FOREIGN_Q):
        so, fo = _options(srv_opts), _options(ft_opts)
        host, port, dbname = so.get("host", "localhost"), int(so.get("port", "5432")), so.get("dbname")
        remote = f"{fo.get('schema_name', schema)}.{fo.get('table_name', name)}"
        if host not in location.hosts or port != location.port or dbname != location.dbname or remote not in wanted:
            continue
        out.append(Copy(
            id=_id("foreign", server, schema, name), kind=CopyKind.FOREIGN_TABLE, schema_name=schema, name=name,
            server=server, creator=owner, sources=(remote,), destination=f"server {server}",
            evidence=(CopyEvidence(source="catalog", fact=f"foreign table {schema}.{name} on {server} reads {remote} "
                                   f"through foreign server {srv} ({host}:{port}/{dbname})"),),
        ))
    return out


_SUBSCRIBED_Q = """
SELECT s.subname, pg_get_userbyid(s.subowner), s.subconninfo, s.subpublications::text[], n.nspname, c.relname,
       c.reltuples::bigint
FROM pg_subscription s JOIN pg_subscription_rel sr ON sr.srsubid = s.oid
JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1, 5, 6
"""


async def find_subscribed_tables(conn: AsyncConnection[Any], *, server: str, location: DatasetLocation,
                                 publications: Sequence[str]) -> list[Copy]:
    """Tables on the server ``conn`` reaches (a subscriber the deployment names ``server``) that its
    subscriptions to ``publications`` on the dataset's database fill: copies on another server.
    Reading subscriptions' connection strings needs a superuser there."""
    wanted = set(publications)
    out: list[Copy] = []
    for sub, owner, conninfo, pubs, schema, name, _tuples in await _rows(conn, _SUBSCRIBED_Q):
        info = conninfo_to_dict(conninfo)
        host, port, dbname = info.get("host", "localhost"), int(info.get("port") or 5432), info.get("dbname")
        carried = sorted(wanted & set(pubs))
        if host not in location.hosts or port != location.port or dbname != location.dbname or not carried:
            continue
        out.append(Copy(
            id=_id("subscribed", server, schema, name), kind=CopyKind.SUBSCRIBED_TABLE, schema_name=schema, name=name,
            server=server, creator=owner, destination=f"server {server}",
            sources=tuple(f"publication {p}" for p in carried),
            # the connection string may hold a password: only where it points is kept
            evidence=(CopyEvidence(source="catalog", fact=f"subscription {sub} on {server} fills {schema}.{name} "
                                   f"from publication {', '.join(carried)} ({host}:{port}/{dbname})"),),
        ))
    return out


# ---------------------------------------------------------------- fingerprints


_COLUMNS_Q = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""

_REL_Q = """
SELECT c.oid, c.relkind::text, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

# Relations a copy may be: ordinary tables and materialized views outside the system schemas, the
# most recently created first (pg_class.xmin), or only those made after ``since`` (a transaction id).
_CANDIDATES_Q = """
SELECT c.oid, c.relkind::text, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
  AND n.nspname <> ALL(%(skip_schemas)s::text[]) AND n.nspname NOT LIKE 'pg\\_%%'
  AND n.nspname || '.' || c.relname <> ALL(%(skip)s::text[])
  AND (%(since)s::bigint IS NULL OR age(c.xmin) <= age(%(since)s::text::xid))
ORDER BY age(c.xmin), n.nspname, c.relname
LIMIT %(limit)s
"""


def _sampled(where: Located, reltuples: int, rows: int) -> sql.Composed:
    """At most ``rows`` rows of the relation: all of a small one in random order, a block sample of a large one."""
    if reltuples <= rows * 10:
        return sql.SQL("SELECT * FROM {} ORDER BY random() LIMIT {}").format(where.ident, sql.Literal(rows))
    percent = min(100.0, 100.0 * rows * 2 / max(reltuples, 1))
    return sql.SQL("SELECT * FROM {} TABLESAMPLE SYSTEM ({}) LIMIT {}").format(
        where.ident, sql.Literal(percent), sql.Literal(rows))


async def _located(conn: AsyncConnection[Any], qualified: str) -> tuple[Located, int] | None:
    schema, _, name = qualified.partition(".")
    rows = await _rows(conn, _REL_Q, (schema, name))
    return (Located(*rows[0][:5]), int(rows[0][5])) if rows else None


async def _columns(conn: AsyncConnection[Any], oid: int) -> list[str]:
    return [r[0] for r in await _rows(conn, _COLUMNS_Q, (oid,))]


async def dataset_fingerprint(conn: AsyncConnection[Any], table: str) -> Fingerprint | None:
    """The digests of one dataset table's distinctive values, over a bounded sample of its rows."""
    found = await _located(conn, table)
    if found is None:
        return None
    where, reltuples = found
    columns = await _columns(conn, where.oid)
    if not columns:
        return None
    values = sql.SQL(", ").join(sql.SQL("(s.{}::text)").format(sql.Identifier(c)) for c in columns)
    query = sql.SQL(
        "WITH s AS MATERIALIZED ({sample}) "
        "SELECT (SELECT count(*) FROM s), ARRAY(SELECT md5(x.v) FROM s, LATERAL (VALUES {values}) x(v) "
        "WHERE length(x.v) >= {min} GROUP BY x.v HAVING count(*) <= {repeats})"
    ).format(sample=_sampled(where, reltuples, MAX_SAMPLED_ROWS), values=values, min=sql.Literal(MIN_VALUE_CHARS),
             repeats=sql.Literal(MAX_VALUE_REPEATS))
    sampled, digests = (await _rows(conn, query))[0]
    total = int(sampled) if reltuples <= MAX_SAMPLED_ROWS * 10 and sampled < MAX_SAMPLED_ROWS else max(reltuples, 1)
    return fingerprint(digests, rows_total=total, rows_sampled=int(sampled))


async def find_by_fingerprint(conn: AsyncConnection[Any], tables: Sequence[str], *, skip: Sequence[str] = (),
                              since_xid: int | None = None, limit: int = MAX_CANDIDATES) -> list[Copy]:
    """Tables and materialized views whose sampled rows hold the dataset's values: copies the log
    cannot name (dynamic SQL, a client that wrote rows back). ``skip``: relations already known
    (the dataset's, copies found). Only digests cross the wire."""
    prints = {t: fp for t in tables if (fp := await dataset_fingerprint(conn, t)) is not None and fp.digests}
    if not prints:
        return []
    params = {"skip_schemas": [*_SYSTEM_SCHEMAS, QUARANTINE_SCHEMA], "skip": [*tables, *skip],
              "since": since_xid, "limit": limit}
    out: list[Copy] = []
    for oid, relkind, schema, name, owner, reltuples in await _rows(conn, _CANDIDATES_Q, params):
        where = Located(oid, relkind, schema, name, owner)
        columns = await _columns(conn, oid)
        if not columns:
            continue
        digests = sql.SQL(", ").join(sql.SQL("md5(s.{}::text)").format(sql.Identifier(c)) for c in columns)
        query = sql.SQL("SELECT ARRAY[{}] FROM ({}) s").format(digests, _sampled(where, reltuples, CANDIDATE_ROWS))
        try:
            rows = [r[0] for r in await _rows(conn, query)]
        except psycopg.errors.InsufficientPrivilege:
            continue  # the tool's role may not read it: nothing to say either way
        best = max(((t, match(fp, rows)) for t, fp in prints.items()), key=lambda tm: tm[1].confidence)
        table, m = best
        if not m.is_copy:
            continue
        out.append(Copy(
            id=_id("fingerprint", schema, name), kind=CopyKind.FINGERPRINT, schema_name=schema, name=name,
            creator=owner, sources=(table,), confidence=m.confidence, rows=await count_rows(conn, where),
            rows_basis="counted",
            evidence=(CopyEvidence(source="fingerprint", fact=f"{m.matched} of {m.sampled} sampled rows hold values "
                                   f"of {table} (fingerprint of {len(prints[table].digests)} values)"),),
        ))
    return out
