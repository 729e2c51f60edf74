"""Containing copies of the dataset inside PostgreSQL, like the dataset, verified by the database.

A REVOKE does not touch an owner, and the person who made a copy owns it. So a copy in a relation
is taken from everyone but break-glass: every grant on it revoked, its owner changed to a
quarantine role that cannot log in, and the relation renamed into a quarantine schema whose USAGE
only the quarantine role and the break-glass roles hold (the break-glass roles may read it, to
investigate). Sessions that could read it are ended first: a running query or an open cursor
would outlive the REVOKE, and they hold the locks the ALTERs wait for.

A temporary copy lives in one session: that session is ended (the table goes with it). A
publication stops carrying the tables, and the logical replication connections of the database are
ended (a replication connection's privileges are checked only when it starts). A file that
``COPY TO`` wrote on the server is read back through the database where this role may, and hashed;
otherwise it is listed as left the database.

Every step is idempotent (a copy already in the quarantine is verified, not moved again) and
followed by asking the database whether anyone but break-glass still reads the copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from pausegate.connectors.postgres.copies_catalog import (
    QUARANTINE_ROLE,
    QUARANTINE_SCHEMA,
    Located,
    count_rows,
    locate,
    quarantine_name,
)
from pausegate.errors import TargetUnavailableError
from pausegate.models.copies import RELATION_KINDS, Copy, CopyContainment, CopyKind, Residual

LOCK_TIMEOUT = "5s"
LOCK_ATTEMPTS = 5
FILE_CHUNK = 16 * 1024 * 1024
_OPERATOR = "operator: the role containing it"
_UNREVOCABLE = ("superuser", "pg_read_all_data", _OPERATOR)


async def _rows(conn: AsyncConnection[Any], query: str | sql.Composable, params: Any = None) -> list[Any]:
    cur = await conn.execute(query, params)  # type: ignore[arg-type]
    return await cur.fetchall() if cur.description else []


class _Runner:
    """Runs statements and keeps their text, for the record of what was done."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn, self.done = conn, list[str]()

    async def run(self, statement: sql.Composed) -> None:
        await self.conn.execute(statement)
        self.done.append(statement.as_string(self.conn))


# ---------------------------------------------------------------- the quarantine itself


async def ensure_quarantine(conn: AsyncConnection[Any], break_glass: Sequence[str]) -> list[str]:
    """The quarantine role (NOLOGIN, no members) and schema (its USAGE: the role and break-glass only)."""
    r = _Runner(conn)
    role, schema = sql.Identifier(QUARANTINE_ROLE), sql.Identifier(QUARANTINE_SCHEMA)
    found = await _rows(conn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (QUARANTINE_ROLE,))
    if not found:
        await r.run(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
    elif found[0][0]:
        await r.run(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
    for (member,) in await _rows(conn, "SELECT pg_get_userbyid(member) FROM pg_auth_members "
                                       "WHERE roleid = (SELECT oid FROM pg_roles WHERE rolname = %s)",
                                 (QUARANTINE_ROLE,)):
        await r.run(sql.SQL("REVOKE {} FROM {}").format(role, sql.Identifier(member)))
    owner = await _rows(conn, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
                        (QUARANTINE_SCHEMA,))
    if not owner:
        await r.run(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema, role))
    elif owner[0][0] != QUARANTINE_ROLE:
        await r.run(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, role))
    keep = {QUARANTINE_ROLE, *break_glass}
    for (grantee,) in await _rows(conn, """
            SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
            FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = %s""", (QUARANTINE_SCHEMA,)):
        if grantee not in keep:
            who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
            await r.run(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, who))
    held = {g for (g,) in await _rows(conn, """
            SELECT r.rolname FROM pg_roles r WHERE r.rolname = ANY(%s::text[])
              AND has_schema_privilege(r.oid, (SELECT oid FROM pg_namespace WHERE nspname = %s), 'USAGE')""",
            (list(break_glass), QUARANTINE_SCHEMA))}
    existing = {g for (g,) in await _rows(conn, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s::text[])",
                                          (list(break_glass),))}
    for grantee in sorted(existing - held):
        await r.run(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(grantee)))
    return r.done


# ---------------------------------------------------------------- readers and their sessions


_READERS_Q = """
SELECT r.rolname FROM pg_roles r
WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname <> ALL(%(keep)s::text[]) AND r.rolname <> current_user
  AND has_table_privilege(r.oid, %(oid)s::oid, 'SELECT')
"""

_END_SESSIONS_Q = """
SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND coalesce(a.usename::text, '') <> ALL(%(keep)s::text[])
  AND (a.usename = ANY(%(readers)s::text[])
       OR a.pid IN (SELECT l.pid FROM pg_locks l WHERE l.relation = ANY(%(oids)s::oid[])))
"""


async def _family(conn: AsyncConnection[Any], oid: int) -> list[int]:
    """The relation and every partition or inheritance child below it (they hold its rows)."""
    rows = await _rows(conn, """
        WITH RECURSIVE t(oid) AS (
          SELECT %s::oid UNION SELECT i.inhrelid FROM pg_inherits i JOIN t ON i.inhparent = t.oid)
        SELECT oid FROM t""", (oid,))
    return [r[0] for r in rows]


async def _end_readers(conn: AsyncConnection[Any], oids: list[int], keep: list[str]) -> int:
    readers = sorted({r for oid in oids for (r,) in await _rows(conn, _READERS_Q, {"keep": keep, "oid": oid})})
    rows = await _rows(conn, _END_SESSIONS_Q, {"keep": keep, "readers": readers, "oids": oids})
    return int(rows[0][0]) if rows else 0


# ---------------------------------------------------------------- a copy in a relation


async def _grantees(conn: AsyncConnection[Any], oid: int) -> list[tuple[str, str | None]]:
    """(grantee, column or None) of every grant on the relation and its columns."""
    rows = await _rows(conn, """
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, NULL::text
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %(oid)s
        UNION
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, at.attname::text
        FROM pg_attribute at, aclexplode(at.attacl) a
        WHERE at.attrelid = %(oid)s AND at.attnum > 0 AND at.attacl IS NOT NULL""", {"oid": oid})
    return [(g, c) for g, c in rows]


async def _take_over(r: _Runner, copy: Copy, rel: Located, keep: set[str], break_glass: Sequence[str]) -> None:
    """In the caller's transaction: revoke every grant but break-glass, owner to the quarantine role, into
    the quarantine schema under a unique name, SELECT for break-glass."""
    conn = r.conn
    for grantee, column in await _grantees(conn, rel.oid):
        if grantee in keep:
            continue
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        if column is None:
            await r.run(sql.SQL("REVOKE ALL ON {} FROM {} CASCADE").format(rel.ident, who))
        else:
            await r.run(sql.SQL("REVOKE ALL ({}) ON {} FROM {} CASCADE").format(sql.Identifier(column), rel.ident, who))
    word = sql.SQL(rel.word)
    for child in await _family(conn, rel.oid):
        if child != rel.oid:
            located = await _rows(conn, "SELECT c.oid, c.relkind::text, n.nspname, c.relname, "
                                        "pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                                        "ON n.oid = c.relnamespace WHERE c.oid = %s", (child,))
            part = Located(*located[0])
            for grantee, _column in await _grantees(conn, child):
                if grantee not in keep:
                    who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
                    await r.run(sql.SQL("REVOKE ALL ON {} FROM {} CASCADE").format(part.ident, who))
            if part.owner != QUARANTINE_ROLE:
                await r.run(sql.SQL("ALTER {} {} OWNER TO {}").format(
                    sql.SQL(part.word), part.ident, sql.Identifier(QUARANTINE_ROLE)))
            if part.schema != QUARANTINE_SCHEMA:
                # a partition's name is unique to its copy first, as the copy's own is
                unique = quarantine_name(copy.model_copy(update={"name": part.name}))
                await r.run(sql.SQL("ALTER {} {} RENAME TO {}").format(
                    sql.SQL(part.word), part.ident, sql.Identifier(unique)))
                await r.run(sql.SQL("ALTER {} {}.{} SET SCHEMA {}").format(
                    sql.SQL(part.word), sql.Identifier(part.schema), sql.Identifier(unique),
                    sql.Identifier(QUARANTINE_SCHEMA)))
    if rel.owner != QUARANTINE_ROLE:
        await r.run(sql.SQL("ALTER {} {} OWNER TO {}").format(word, rel.ident, sql.Identifier(QUARANTINE_ROLE)))
    target = quarantine_name(copy)
    if rel.schema != QUARANTINE_SCHEMA:
        # renamed where it is first: in the quarantine schema its own name may be taken by another copy
        if rel.name != target:
            await r.run(sql.SQL("ALTER {} {} RENAME TO {}").format(word, rel.ident, sql.Identifier(target)))
        moved = sql.SQL("{}.{}").format(sql.Identifier(rel.schema), sql.Identifier(target))
        await r.run(sql.SQL("ALTER {} {} SET SCHEMA {}").format(word, moved, sql.Identifier(QUARANTINE_SCHEMA)))
    final = sql.SQL("{}.{}").format(sql.Identifier(QUARANTINE_SCHEMA), sql.Identifier(target))
    for role in break_glass:
        await r.run(sql.SQL("GRANT SELECT ON {} TO {}").format(final, sql.Identifier(role)))


async def quarantine_relation(conn: AsyncConnection[Any], copy: Copy, *,
                              break_glass: Sequence[str] = ()) -> CopyContainment:
    """Quarantine a copy held in a relation (module doc); verified before it returns. ``conn`` must
    be in autocommit mode; each attempt is one transaction."""
    kept = [g for g in break_glass if await _rows(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (g,))]
    statements = await ensure_quarantine(conn, kept)
    rel = await locate(conn, copy)
    if rel is None:
        gone = copy.model_copy(update={"state": "gone", "note": "no such relation in the database now"})
        return CopyContainment(contained=gone, statements=statements, verified=True)
    keep = {QUARANTINE_ROLE, *kept}
    operator = (await _rows(conn, "SELECT current_user"))[0][0]
    ended = 0
    for attempt in range(LOCK_ATTEMPTS):
        oids = await _family(conn, rel.oid)
        ended += await _end_readers(conn, oids, sorted(keep | {operator}))
        r = _Runner(conn)
        try:
            async with conn.transaction():
                await conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                await _take_over(r, copy, rel, keep, kept)
        except psycopg.errors.LockNotAvailable:
            if attempt == LOCK_ATTEMPTS - 1:
                raise TargetUnavailableError(f"copy {copy.id}: {rel.schema}.{rel.name} stayed locked by a "
                                             f"session {LOCK_ATTEMPTS} times over") from None
            continue  # a session started in between holds a lock: ended on the next attempt
        statements += r.done
        break
    moved = await locate(conn, copy)
    if moved is None:
        raise TargetUnavailableError(f"copy {copy.id}: {rel.schema}.{rel.name} disappeared while it was quarantined")
    residual, ok = await verify_relation(conn, copy, kept)
    rows = await count_rows(conn, moved)
    contained = copy.model_copy(update={
        "state": "quarantined" if ok else copy.state, "quarantined_as": f"{QUARANTINE_SCHEMA}.{moved.name}",
        "rows": rows if rows is not None else copy.rows,
        "rows_basis": "counted" if rows is not None else copy.rows_basis,
        "schema_name": copy.schema_name or rel.schema, "name": copy.name or rel.name,
    })
    return CopyContainment(contained=contained, statements=statements, sessions_ended=ended, verified=ok,
                           residual=residual)


async def verify_relation(conn: AsyncConnection[Any], copy: Copy,
                          break_glass: Sequence[str]) -> tuple[list[Residual], bool]:
    """Asks the database: is the copy in the quarantine schema, owned by the quarantine role, granted to
    no one but break-glass, and does any login role but break-glass still reach it? Superusers and
    members of pg_read_all_data always do, and so may the role doing it: listed, not blocking.
    Returns (residual readers, verified)."""
    rel = await locate(conn, copy)
    if rel is None or rel.schema != QUARANTINE_SCHEMA or rel.owner != QUARANTINE_ROLE:
        return [], False
    keep = {QUARANTINE_ROLE, *break_glass}
    grants_ok = all(g in keep for g, _ in await _grantees(conn, rel.oid))
    schema_ok = not await _rows(conn, """
        SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = %s
          AND (a.grantee = 0 OR pg_get_userbyid(a.grantee) <> ALL(%s::text[]))""",
        (QUARANTINE_SCHEMA, sorted(keep)))
    role_ok = await _rows(conn, """
        SELECT NOT r.rolcanlogin AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid)
        FROM pg_roles r WHERE r.rolname = %s""", (QUARANTINE_ROLE,))
    residual: list[Residual] = []
    for role, superuser, read_all, createrole, operator in await _rows(conn, """
            SELECT r.rolname, r.rolsuper, pg_has_role(r.oid, 'pg_read_all_data', 'USAGE'), r.rolcreaterole,
                   r.rolname = current_user
            FROM pg_roles r
            WHERE r.rolcanlogin AND r.rolname <> ALL(%(keep)s::text[])
              AND (has_table_privilege(r.oid, %(oid)s::oid, 'SELECT')
                   AND has_schema_privilege(r.oid, %(nsp)s::regnamespace, 'USAGE')
                   OR (r.rolcreaterole AND current_setting('server_version_num')::int < 160000))
            ORDER BY 1""", {"keep": sorted(keep), "oid": rel.oid, "nsp": QUARANTINE_SCHEMA}):
        # the operator keeps what it needs to contain, like break-glass; it is listed all the same
        why = ("superuser" if superuser else _OPERATOR if operator else "pg_read_all_data" if read_all
               else "CREATEROLE: can make itself a member of the quarantine role" if createrole
               else "SELECT on the copy")
        residual.append(Residual(copy_id=copy.id, role=role, why=why))
    blocking = [x for x in residual if x.why not in _UNREVOCABLE]
    return residual, bool(grants_ok and schema_ok and role_ok and role_ok[0][0] and not blocking)


# ---------------------------------------------------------------- the other kinds


def _session_pid(session: str) -> tuple[int, int] | None:
    """(backend start, pid) from a log's session_id: both in hex, "start.pid"."""
    start, _, pid = session.partition(".")
    try:
        return int(start, 16), int(pid, 16)
    except ValueError:
        return None


async def end_temporary_copy(conn: AsyncConnection[Any], copy: Copy) -> CopyContainment:
    """A temporary table lives as long as its session: the session is ended, and with it the table."""
    session = copy.evidence[0].session if copy.evidence else None
    ids = _session_pid(session or "")
    if ids is None:
        return CopyContainment(contained=copy, verified=False)
    start, pid = ids
    match = "a.pid = %s AND extract(epoch FROM date_trunc('second', a.backend_start))::bigint = %s"
    # with a timeout, pg_terminate_backend returns once the backend is gone (or the timeout passed)
    rows = await _rows(conn, "SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid, 10000)) "
                             f"FROM pg_stat_activity a WHERE {match}", (pid, start))
    ended = int(rows[0][0]) if rows else 0
    left = await _rows(conn, f"SELECT 1 FROM pg_stat_activity a WHERE {match}", (pid, start))
    gone = copy.model_copy(update={"state": "gone", "note": "its session was ended, and the table with it"})
    return CopyContainment(contained=gone if not left else copy, sessions_ended=ended, verified=not left)


async def read_back_file(conn: AsyncConnection[Any], copy: Copy) -> CopyContainment:
    """Reads a file ``COPY TO`` wrote on the server through the database and hashes it; a file this role
    may not read, or that is gone, left the database."""
    path = copy.destination or ""
    digest, size = hashlib.sha256(), 0
    try:
        total = int((await _rows(conn, "SELECT size FROM pg_stat_file(%s)", (path,)))[0][0])
        while size < total:
            (chunk,) = (await _rows(conn, "SELECT pg_read_binary_file(%s, %s, %s)",
                                    (path, size, min(FILE_CHUNK, total - size))))[0]
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFile, psycopg.errors.InternalError_) as exc:
        why = "this role may not read server files" if isinstance(exc, psycopg.errors.InsufficientPrivilege) else (
            f"the file cannot be read back ({exc.diag.message_primary})")
        left = copy.model_copy(update={"state": "left_database", "note": why})
        return CopyContainment(contained=left, verified=True)
    read = copy.model_copy(update={"state": "server_file", "file_sha256": digest.hexdigest(), "file_bytes": size})
    return CopyContainment(contained=read, verified=True)


async def contain_publication(conn: AsyncConnection[Any], copy: Copy, tables: Sequence[str]) -> CopyContainment:
    """The publication stops carrying ``tables`` (schema.table); then the database's logical replication
    connections are ended, so none goes on with what it was allowed when it started."""
    r, pub = _Runner(conn), sql.Identifier(copy.name or "")
    rows = await _rows(conn, """
        SELECT p.puballtables,
               ARRAY(SELECT n.nspname || '.' || c.relname FROM pg_publication_rel pr
                     JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE pr.prpubid = p.oid),
               ARRAY(SELECT n.nspname::text FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid
                     WHERE pn.pnpubid = p.oid),
               p.pubinsert OR p.pubupdate OR p.pubdelete OR p.pubtruncate
        FROM pg_publication p WHERE p.pubname = %s""", (copy.name,))
    if not rows:
        return CopyContainment(contained=copy.model_copy(update={"state": "gone"}), verified=True)
    all_tables, listed, schemas, publishing = rows[0]
    wanted = set(tables)
    for name in sorted(wanted & set(listed)):
        schema, _, table = name.partition(".")
        await r.run(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}.{}").format(
            pub, sql.Identifier(schema), sql.Identifier(table)))
    for schema in sorted({t.partition(".")[0] for t in wanted} & set(schemas)):
        await r.run(sql.SQL("ALTER PUBLICATION {} DROP TABLES IN SCHEMA {}").format(pub, sql.Identifier(schema)))
    if all_tables and publishing:
        # a publication of every table cannot leave one out: it stops publishing changes at all
        await r.run(sql.SQL("ALTER PUBLICATION {} SET (publish = '')").format(pub))
    ended = await _rows(conn, """
        SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots
        WHERE slot_type = 'logical' AND database = current_database() AND active_pid IS NOT NULL""")
    still = await _rows(conn, """
        SELECT 1 FROM pg_publication p JOIN pg_publication_tables pt ON pt.pubname = p.pubname
        WHERE p.pubname = %s AND pt.schemaname || '.' || pt.tablename = ANY(%s::text[])
          AND (p.pubinsert OR p.pubupdate OR p.pubdelete OR p.pubtruncate)""", (copy.name, sorted(wanted)))
    done = copy.model_copy(update={
        "state": "left_database" if not still else copy.state,
        "note": "no longer carries the tables; rows replicated before are on the subscribers"})
    return CopyContainment(contained=done, statements=r.done, replication_connections_ended=int(ended[0][0]),
                           verified=not still)


async def contain(conn: AsyncConnection[Any], copy: Copy, *, dataset_tables: Sequence[str] = (),
                  break_glass: Sequence[str] = ()) -> CopyContainment:
    """Contain one copy as its kind allows (module doc); what cannot be contained is returned as listed."""
    if copy.state in ("possible", "left_database", "gone"):
        return CopyContainment(contained=copy, verified=True)
    if copy.kind == CopyKind.TEMPORARY_TABLE:
        return await end_temporary_copy(conn, copy)
    if copy.kind == CopyKind.COPY_TO_FILE:
        return await read_back_file(conn, copy)
    if copy.kind == CopyKind.PUBLICATION:
        return await contain_publication(conn, copy, [*dataset_tables, *copy.sources])
    if copy.kind in RELATION_KINDS:
        return await quarantine_relation(conn, copy, break_glass=break_glass)
    return CopyContainment(contained=copy, verified=False)
