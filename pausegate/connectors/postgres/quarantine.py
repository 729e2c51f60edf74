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
    locate_many,
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
    try:
        # in a pipeline the answer's shape is known only once it is fetched
        return await cur.fetchall()
    except psycopg.ProgrammingError:
        return []  # a statement that returns no rows


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
  AND EXISTS (SELECT 1 FROM unnest(%(oids)s::oid[]) AS o(oid) WHERE has_table_privilege(r.oid, o.oid, 'SELECT'))
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


async def _families(conn: AsyncConnection[Any], oids: Sequence[int]) -> dict[int, list[int]]:
    """``_family`` of each relation, in one query."""
    rows = await _rows(conn, """
        WITH RECURSIVE t(root, oid) AS (
          SELECT o, o FROM unnest(%s::oid[]) AS o
          UNION SELECT t.root, i.inhrelid FROM pg_inherits i JOIN t ON i.inhparent = t.oid)
        SELECT root, oid FROM t""", (list(oids),))
    out: dict[int, list[int]] = {}
    for root, oid in rows:
        out.setdefault(root, []).append(oid)
    return out


async def _end_readers(conn: AsyncConnection[Any], oids: list[int], keep: list[str]) -> int:
    if not oids:
        return 0
    readers = sorted(r for (r,) in await _rows(conn, _READERS_Q, {"keep": keep, "oids": oids}))
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


async def _grantees_many(conn: AsyncConnection[Any], oids: Sequence[int]) -> dict[int, list[tuple[str, str | None]]]:
    """``_grantees`` of each relation, in one trip."""
    rows = await _rows(conn, """
        SELECT DISTINCT c.oid, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, NULL::text
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = ANY(%(oids)s::oid[])
        UNION
        SELECT DISTINCT at.attrelid, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
               at.attname::text
        FROM pg_attribute at, aclexplode(at.attacl) a
        WHERE at.attrelid = ANY(%(oids)s::oid[]) AND at.attnum > 0 AND at.attacl IS NOT NULL""",
        {"oids": list(oids)})
    out: dict[int, list[tuple[str, str | None]]] = {oid: [] for oid in oids}
    for oid, grantee, column in rows:
        out[oid].append((grantee, column))
    return out


async def _take_over(r: _Runner, copy: Copy, rel: Located, keep: set[str], break_glass: Sequence[str],
                     family: list[int], grants: list[tuple[str, str | None]] | None = None) -> None:
    """In the caller's transaction: revoke every grant but break-glass, owner to the quarantine role, into
    the quarantine schema under a unique name, SELECT for break-glass. ``grants``: the relation's, read
    just before for many copies at once (a grant made since is found by the verification that follows)."""
    conn = r.conn
    for grantee, column in grants if grants is not None else await _grantees(conn, rel.oid):
        if grantee in keep:
            continue
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        if column is None:
            await r.run(sql.SQL("REVOKE ALL ON {} FROM {} CASCADE").format(rel.ident, who))
        else:
            await r.run(sql.SQL("REVOKE ALL ({}) ON {} FROM {} CASCADE").format(sql.Identifier(column), rel.ident, who))
    word = sql.SQL(rel.word)
    for child in family:
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
    return (await quarantine_relations(conn, [copy], break_glass=break_glass))[0]


async def quarantine_relations(conn: AsyncConnection[Any], copies: Sequence[Copy], *,
                               break_glass: Sequence[str] = ()) -> list[CopyContainment]:
    """Quarantine copies held in relations, each in its own transaction, all verified before it
    returns. What every copy shares (the quarantine itself, the sessions to end, the verification)
    is done once for all of them: containing a hundred copies costs little more than the ALTERs."""
    kept = [g for (g,) in await _rows(conn, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s::text[])",
                                      (list(break_glass),))]
    kept = [g for g in break_glass if g in kept]
    statements = await ensure_quarantine(conn, kept)
    keep = {QUARANTINE_ROLE, *kept}
    operator = (await _rows(conn, "SELECT current_user"))[0][0]
    located = await locate_many(conn, copies)
    families = await _families(conn, [rel.oid for rel in located if rel is not None])
    ended = await _end_readers(conn, [o for oids in families.values() for o in oids], sorted(keep | {operator}))
    grants = await _grantees_many(conn, [rel.oid for rel in located if rel is not None])
    done: list[list[str]] = []
    for copy, rel in zip(copies, located, strict=True):
        done.append(await _take_over_locked(conn, copy, rel, keep, kept, operator, families.get(rel.oid, [rel.oid]),
                                            grants.get(rel.oid)) if rel is not None else [])
    checked = await _verify(conn, [c for c, rel in zip(copies, located, strict=True) if rel is not None], kept)
    counts = await _count_many(conn, [m for m, _residual, _ok in checked.values() if m is not None])
    out: list[CopyContainment] = []
    for copy, rel, run in zip(copies, located, done, strict=True):
        first, statements = statements, []  # the quarantine's own statements are the first copy's
        if rel is None:
            gone = copy.model_copy(update={"state": "gone", "note": "no such relation in the database now"})
            out.append(CopyContainment(contained=gone, statements=first, verified=True))
            continue
        moved, residual, ok = checked[copy.id]
        if moved is None:
            raise TargetUnavailableError(f"copy {copy.id}: {rel.schema}.{rel.name} disappeared while it was "
                                         "quarantined")
        rows = counts[moved.oid] if moved.oid in counts else await count_rows(conn, moved)
        contained = copy.model_copy(update={
            "state": "quarantined" if ok else copy.state, "quarantined_as": f"{QUARANTINE_SCHEMA}.{moved.name}",
            "rows": rows if rows is not None else copy.rows,
            "rows_basis": "counted" if rows is not None else copy.rows_basis,
            "schema_name": copy.schema_name or rel.schema, "name": copy.name or rel.name,
        })
        out.append(CopyContainment(contained=contained, statements=first + run,
                                   sessions_ended=ended if len(out) == 0 else 0, verified=ok, residual=residual))
    return out


async def _count_many(conn: AsyncConnection[Any], relations: Sequence[Located]) -> dict[int, int]:
    """The rows of each relation, in one trip (none when this role may not read one of them: then each
    is counted alone)."""
    if not relations:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::oid, count(*) FROM {}").format(sql.Literal(rel.oid), rel.ident) for rel in relations)
    try:
        return {int(oid): int(n) for oid, n in await _rows(conn, query)}
    except psycopg.errors.InsufficientPrivilege:
        return {}


async def _take_over_locked(conn: AsyncConnection[Any], copy: Copy, rel: Located, keep: set[str],
                            kept: Sequence[str], operator: str, family: list[int],
                            grants: list[tuple[str, str | None]] | None) -> list[str]:
    """One copy's take-over in one transaction; a session that started reading it since its readers'
    sessions were ended holds a lock the ALTERs wait for: it is ended, and the transaction tried again."""
    for attempt in range(LOCK_ATTEMPTS):
        r = _Runner(conn)
        try:
            # pipelined: the ALTERs wait for no answer but the transaction's
            async with conn.pipeline(), conn.transaction():
                await conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
                await _take_over(r, copy, rel, keep, kept, family, grants)
        except psycopg.errors.LockNotAvailable:
            if attempt == LOCK_ATTEMPTS - 1:
                raise TargetUnavailableError(f"copy {copy.id}: {rel.schema}.{rel.name} stayed locked by a "
                                             f"session {LOCK_ATTEMPTS} times over") from None
            await _end_readers(conn, await _family(conn, rel.oid), sorted(keep | {operator}))
            grants = None  # read again, in the next attempt's transaction
            continue
        return r.done
    return []


async def verify_relation(conn: AsyncConnection[Any], copy: Copy,
                          break_glass: Sequence[str]) -> tuple[list[Residual], bool]:
    """Asks the database: is the copy in the quarantine schema, owned by the quarantine role, granted to
    no one but break-glass, and does any login role but break-glass still reach it? Superusers and
    members of pg_read_all_data always do, and so may the role doing it: listed, not blocking.
    Returns (residual readers, verified)."""
    _where, residual, ok = (await _verify(conn, [copy], break_glass))[copy.id]
    return residual, ok


_RESIDUAL_Q = """
SELECT o.oid, r.rolname, r.rolsuper, pg_has_role(r.oid, 'pg_read_all_data', 'USAGE'), r.rolcreaterole,
       r.rolname = current_user
FROM unnest(%(oids)s::oid[]) AS o(oid), pg_roles r
WHERE r.rolcanlogin AND r.rolname <> ALL(%(keep)s::text[])
  AND (has_table_privilege(r.oid, o.oid, 'SELECT') AND has_schema_privilege(r.oid, %(nsp)s::regnamespace, 'USAGE')
       OR (r.rolcreaterole AND current_setting('server_version_num')::int < 160000))
ORDER BY 1, 2
"""

_GRANTEES_Q = """
SELECT c.oid, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = ANY(%(oids)s::oid[])
UNION
SELECT at.attrelid, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
FROM pg_attribute at, aclexplode(at.attacl) a
WHERE at.attrelid = ANY(%(oids)s::oid[]) AND at.attnum > 0 AND at.attacl IS NOT NULL
"""


async def _verify(conn: AsyncConnection[Any], copies: Sequence[Copy],
                  break_glass: Sequence[str]) -> dict[str, tuple[Located | None, list[Residual], bool]]:
    """``verify_relation`` for many copies, asking what they share once: copy id -> (where it is now,
    residual readers, verified)."""
    keep = {QUARANTINE_ROLE, *break_glass}
    where = dict(zip((c.id for c in copies), await locate_many(conn, copies), strict=True))
    held = {c.id: rel for c in copies if (rel := where[c.id]) is not None
            and rel.schema == QUARANTINE_SCHEMA and rel.owner == QUARANTINE_ROLE}
    out: dict[str, tuple[Located | None, list[Residual], bool]] = {c.id: (where[c.id], [], False) for c in copies}
    if not held:
        return out
    oids = sorted({rel.oid for rel in held.values()})
    grantees: dict[int, set[str]] = {}
    for oid, grantee in await _rows(conn, _GRANTEES_Q, {"oids": oids}):
        grantees.setdefault(oid, set()).add(grantee)
    schema_ok = not await _rows(conn, """
        SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = %s
          AND (a.grantee = 0 OR pg_get_userbyid(a.grantee) <> ALL(%s::text[]))""",
        (QUARANTINE_SCHEMA, sorted(keep)))
    role_ok = await _rows(conn, """
        SELECT NOT r.rolcanlogin AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid)
        FROM pg_roles r WHERE r.rolname = %s""", (QUARANTINE_ROLE,))
    readers: dict[int, list[tuple[str, bool, bool, bool, bool]]] = {}
    for oid, *reader in await _rows(conn, _RESIDUAL_Q, {"keep": sorted(keep), "oids": oids,
                                                        "nsp": QUARANTINE_SCHEMA}):
        readers.setdefault(oid, []).append(tuple(reader))  # type: ignore[arg-type]
    shared_ok = bool(schema_ok and role_ok and role_ok[0][0])
    for copy_id, rel in held.items():
        residual: list[Residual] = []
        for role, superuser, read_all, createrole, operator in readers.get(rel.oid, []):
            # the operator keeps what it needs to contain, like break-glass; it is listed all the same
            why = ("superuser" if superuser else _OPERATOR if operator else "pg_read_all_data" if read_all
                   else "CREATEROLE: can make itself a member of the quarantine role" if createrole
                   else "SELECT on the copy")
            residual.append(Residual(copy_id=copy_id, role=role, why=why))
        blocking = [x for x in residual if x.why not in _UNREVOCABLE]
        grants_ok = grantees.get(rel.oid, set()) <= keep
        out[copy_id] = (rel, residual, shared_ok and grants_ok and not blocking)
    return out


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


async def contain_all(conn: AsyncConnection[Any], copies: Sequence[Copy], *, dataset_tables: Sequence[str] = (),
                      break_glass: Sequence[str] = ()) -> list[CopyContainment]:
    """``contain`` for each copy, in order; the relations among them quarantined together
    (``quarantine_relations``)."""
    relations = [c for c in copies if c.kind in RELATION_KINDS and c.kind != CopyKind.TEMPORARY_TABLE
                 and c.state not in ("possible", "left_database", "gone")]
    quarantined = dict(zip((c.id for c in relations),
                           await quarantine_relations(conn, relations, break_glass=break_glass) if relations else [],
                           strict=True))
    return [quarantined[c.id] if c.id in quarantined
            else await contain(conn, c, dataset_tables=dataset_tables, break_glass=break_glass) for c in copies]


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
