"""PostgreSQL's own log as an audit source: the lines that may show a read of the dataset, sealed
byte for byte as the server wrote them.

The server writes ``jsonlog`` (one JSON object per line) with ``log_statement = 'all'``
(``configure_statement_logging`` sets it up). ``PostgresLogSource`` keeps, of the window:

* every statement line ``statement_reads.prefilter`` passes (it may touch the dataset: the name of
  a table or of a view / function that exposes it, dynamic SQL, ...);
* every line that sets ``search_path`` (later statements of the session resolve names with it);
* the ERROR / FATAL / PANIC line that follows a kept statement in its session (its ``line_num``
  is the statement's plus one): the statement failed, e.g. permission denied.

Each record is ``{"at", "file", "offset", "line"}``: ``line`` is the original line's text without
its newline (``line_b64``, base64 of the bytes, when they are not UTF-8), ``file`` the log file's
name and ``offset`` where the line starts in it, ``at`` its time (for the bundle's manifest).
What the statements read is decided later, from these sealed lines (``who_saw_what``).

Nothing here parses SQL with a pattern, or decodes most lines: blocks of the log are lower-cased
and searched for what ``prefilter`` looks for (``statement_reads.needles``) in one Aho-Corasick
pass (or one ``bytes.find`` pass per needle), linear in the log's size; only lines holding one of
them (or any non-ASCII byte, whose case folding could spell one) are decoded and passed through
``prefilter``. A statement the parser cannot read later is still sealed here: nothing is dropped
for being odd.

A line longer than ``max_line_bytes`` (default 1 MiB; anyone who can connect can log a statement of
hundreds of megabytes, and jsonlog writes a control character as six bytes) is never held whole:
it is read on as a stream, and sealed as its first bytes, its length and the SHA-256 of all of it
(``capped_record``) when it is of the window and the database, whatever it says. The reader holds
at most a block and a line's cap at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from pausegate.analysis.pglog_lines import (
    ERRORS,
    capped_record,
    decode_entry,
    leading_fields,
    may_set_path,
    parse_pg_time,
    sealed_record,
    statement_text,
)
from pausegate.analysis.statement_reads import (
    DEFAULT_SEARCH_PATH,
    ReadScope,
    analyse,
    needles,
    prefilter,
)
from pausegate.connectors.audit.window import check_window
from pausegate.errors import TargetUnavailableError
from pausegate.evidence.blocks import RecordBlock
from pausegate.evidence.files import canonical_line

ahocorasick_rs: Any
try:  # one pass over the log for every needle (Rust aho-corasick, SIMD); without it, one pass per needle
    import ahocorasick_rs
except ImportError:  # pragma: no cover - the fallback is exercised by turning USE_AUTOMATON off
    ahocorasick_rs = None

log = structlog.get_logger(__name__)

BLOCK_BYTES = 8 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024  # a longer line is sealed capped (module doc)
# A statement logged before the window whose ERROR falls inside it: the scan starts this much
# earlier to know the statement was kept (its ERROR is then sealed with the window).
LOOKBEHIND = timedelta(minutes=5)
FENCE_TIMEOUT_S = 30.0
# ASCII upper case to lower case, and every byte past ASCII to \x01, which a JSON line never holds
# raw (control characters are escaped): one pass gives the text to search and marks non-ASCII.
_FOLD = bytes.maketrans(
    bytes(range(65, 91)) + bytes(range(128, 256)), bytes(range(97, 123)) + b"\x01" * 128
)
_NON_ASCII = b"\x01"
_IDENT_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_$\x01")
_ERROR_NEEDLES = tuple(f'"error_severity":"{s}"'.encode() for s in sorted(ERRORS))  # as written: upper case
_STATEMENT_NEEDLES = (b'"message":"statement: ', b'"message":"execute ')
USE_AUTOMATON = True  # tests turn it off to check the fallback finds the same lines


def _json_text(text: str, *, fold: bool = True) -> bytes:
    """``text`` as PostgreSQL's jsonlog writes it inside a string (escape_json), folded like a block."""
    raw = json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")
    return raw.translate(_FOLD) if fold else raw


@dataclass
class LongLine:
    """A line over the cap, read as a stream: where it starts, its first bytes, its length and digest."""

    offset: int
    head: bytes
    length: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, part: bytes | memoryview) -> None:
        self.length += len(part)
        self.digest.update(part)


Piece = tuple[str, int, bytes | LongLine]  # (file name, offset, whole lines or one line over the cap)


def split_long_lines(name: str, base: int, block: bytes, cap: int) -> Iterator[Piece]:
    """``block`` (whole lines, from byte ``base``) with every line over ``cap`` bytes taken out as a
    ``LongLine``. Each step looks at most ``cap`` bytes ahead for a newline, so a block of short lines
    costs a few searches, not one per line."""
    start = p = 0
    n = len(block)
    while p < n:
        last = block.rfind(b"\n", p, min(p + cap + 1, n))
        if last >= 0:
            p = last + 1
            continue
        end = block.find(b"\n", p)  # the block ends with one
        if p > start:
            yield name, base + start, block[start:p]
        line = LongLine(base + p, block[p:p + cap])
        line.add(memoryview(block)[p:end])
        yield name, base + p, line
        p = start = end + 1
    if start == 0:
        yield name, base, block
    elif start < n:
        yield name, base + start, block[start:]


class _Scanner:
    """The kept lines of one window, block by block (runs in a worker thread, one block at a time).

    A block is lower-cased (ASCII; when it holds other bytes, these become \x01 so that their
    lines are looked at too) and searched for every needle in one pass of an Aho-Corasick
    automaton (``ahocorasick_rs``), or, without it, one ``bytes.find`` pass per needle; the lines
    holding one are decoded and judged. Both are linear in the block."""

    def __init__(self, scope: ReadScope | None, database: str | None, start: datetime, end: datetime) -> None:
        self.scope, self.database, self.start, self.end = scope, database, start, end
        self._dbname = b'"dbname":"' + _json_text(database, fold=False) + b'"' if database is not None else None
        self.kept: dict[str, int] = {}  # session -> line_num of its last kept statement
        self.open_sessions: set[str] = set()  # sessions whose search_path holds a whole schema
        self.everything = scope is None
        self.whole: frozenset[str] = frozenset()
        self.substrings: list[bytes] = [b"search_path", b"set_config", b"u&"]
        self.starts: list[bytes] = []
        if scope is not None:
            n = needles(scope)
            # a needle past ASCII can only occur in a line that is non-ASCII: all of those are looked at
            self.substrings += [_json_text(s) for s in n.substrings if s.isascii()]
            self.starts = [_json_text(w) for w in n.word_starts]
            self.whole = n.whole_schemas
            if any(s in self.whole for s in DEFAULT_SEARCH_PATH):
                self.everything = True  # e.g. the whole of public: every statement may read it
            # "$user" on the default path: a role named like a whole schema reads it unqualified
            self.substrings += [b'"user":"' + _json_text(s) + b'"' for s in sorted(self.whole)]
        if self.everything:
            self.substrings += list(_STATEMENT_NEEDLES)
        self.substrings = sorted(set(self.substrings))
        self._automaton, self._patterns = self._build_automaton()

    def _build_automaton(self) -> tuple[Any, list[bytes]]:
        """Every needle in one automaton, reporting leftmost-first matches without overlaps. A
        match hides only occurrences starting inside it, on its own line, which is then looked
        at anyway, except for matches dropped here (the "execute <name>:" prefix, an "e'" inside
        a word): those hide nothing the prefilter needs as long as no needle starts inside them,
        which is checked; otherwise the word starts get their own search."""
        if ahocorasick_rs is None or not USE_AUTOMATON:
            return None, []
        errors = [n.lower() for n in _ERROR_NEEDLES]
        starts_safe = not any(n.startswith(b"'") for n in self.substrings)
        # "e'" last: at one position, an earlier pattern wins, and a real needle must not lose
        patterns = [*self.substrings, *errors, _NON_ASCII]
        self._first_word_start = len(patterns)
        if starts_safe:
            patterns += self.starts
            self.starts = []
        automaton = ahocorasick_rs.BytesAhoCorasick(patterns, matchkind=ahocorasick_rs.MATCHKIND_LEFTMOST_FIRST)
        return automaton, patterns

    def _automaton_candidates(self, low: bytes, begin: int, found: set[int]) -> None:
        patterns, word_starts = self._patterns, self._first_word_start
        last_line = -1
        for index, start, _end in self._automaton.find_matches_as_indexes(memoryview(low)[begin:]):
            i = begin + start
            if i <= last_line:
                continue  # this line is a candidate already
            if index >= word_starts:
                before = low[i - 1] if i > 0 else 10
                if before in _IDENT_BYTES and b"\\" not in low[max(i - 6, 0):i]:
                    continue
            elif patterns[index] == b"execute" and i >= 11 and low.startswith(b'"message":"', i - 11):
                continue
            line = low.rfind(b"\n", 0, i) + 1
            found.add(line)
            last_line = low.find(b"\n", i)

    # ---------------------------------------------------------- finding candidate lines

    @staticmethod
    def _lines_with(text: bytes, needle: bytes, begin: int, found: set[int]) -> None:
        i = text.find(needle, begin)
        while i >= 0:
            eol = text.find(b"\n", i)
            # every extended-protocol line starts "execute <name>:": not the dynamic SQL looked for
            if needle == b"execute" and i >= 11 and text.startswith(b'"message":"', i - 11):
                i = text.find(needle, i + 1)
                continue
            found.add(text.rfind(b"\n", 0, i) + 1)
            i = text.find(needle, eol + 1)  # the next line: one hit per line is enough

    @staticmethod
    def _lines_with_word_start(text: bytes, word: bytes, begin: int, found: set[int]) -> None:
        i = text.find(word, begin)
        while i >= 0:
            before = text[i - 1] if i > 0 else 10
            # a JSON escape (\n, \t, \u0001) right before the word stands for a non-word character
            if before not in _IDENT_BYTES or b"\\" in text[max(i - 6, 0):i]:
                found.add(text.rfind(b"\n", 0, i) + 1)
                i = text.find(word, text.find(b"\n", i) + 1)
            else:
                i = text.find(word, i + 1)

    def candidates(self, block: bytes, low: bytes, begin: int, needles_: list[bytes] | None = None) -> set[int]:
        """Starts of the lines from ``begin`` on that hold one of ``needles_`` (default: all)."""
        found: set[int] = set()
        if needles_ is None and self._automaton is not None:
            self._automaton_candidates(low, begin, found)
            for word in self.starts:  # when they could not share the automaton
                self._lines_with_word_start(low, word, begin, found)
            return found
        for needle in needles_ if needles_ is not None else self.substrings:
            self._lines_with(low, needle, begin, found)
        if needles_ is None:
            for word in self.starts:
                self._lines_with_word_start(low, word, begin, found)
            for severity in _ERROR_NEEDLES:
                self._lines_with(block, severity, begin, found)
            if low is not block and _NON_ASCII in low:
                self._lines_with(low, _NON_ASCII, begin, found)
        return found

    # ---------------------------------------------------------- one block

    def scan(self, name: str, base: int, block: bytes) -> list[dict[str, Any]]:
        """The kept records of ``block`` (whole lines) that starts at byte ``base`` of file ``name``."""
        low = block.lower() if block.isascii() else block.translate(_FOLD)
        starts = sorted(self.candidates(block, low, 0))
        out: list[dict[str, Any]] = []
        i = 0
        while i < len(starts):
            begin = starts[i]
            end = block.find(b"\n", begin)
            # one server logs every database: another one's lines are left before being decoded
            if self._dbname is not None and block.find(self._dbname, begin, end) < 0:
                i += 1
                continue
            added = self._line(name, base + begin, block[begin:end], out)
            if added:  # a session now reads a whole schema unqualified: its later lines are candidates
                later = self.candidates(block, low, end + 1, added)
                starts = starts[: i + 1] + sorted(set(starts[i + 1:]) | later)
            i += 1
        return out

    def capped(self, name: str, line: LongLine) -> list[dict[str, Any]]:
        """A line over the cap: sealed capped if it is of the window and the database, read from the
        fields before its message (nothing after them is decoded)."""
        entry = leading_fields(line.head)
        try:
            at = parse_pg_time(str(entry["timestamp"])) if entry is not None else None
        except (KeyError, ValueError):
            at = None
        if entry is None or at is None:
            log.warning("pg_log_line_unreadable", file=name, offset=line.offset, length=line.length)
            return []
        if self.database is not None and entry.get("dbname") != self.database:
            return []
        log.warning("pg_log_line_capped", file=name, offset=line.offset, length=line.length)
        line_num = entry.get("line_num")
        if isinstance(line_num, int):  # its ERROR, if it failed, is sealed too
            self.kept[str(entry.get("session_id", ""))] = line_num
        if not self.start <= at < self.end:
            return []
        return [capped_record(at, name, line.offset, line.head, line.length, line.digest.hexdigest())]

    def _line(self, name: str, offset: int, raw: bytes, out: list[dict[str, Any]]) -> list[bytes]:
        """Keeps the line if it matters; returns needles for lines that matter from now on."""
        entry = decode_entry(raw)
        if entry is None:
            log.warning("pg_log_line_unreadable", file=name, offset=offset)
            return []
        if self.database is not None and entry.get("dbname") != self.database:
            return []
        try:
            at = parse_pg_time(str(entry["timestamp"]))
        except (KeyError, ValueError) as exc:
            log.warning("pg_log_line_unreadable", file=name, offset=offset, error=str(exc))
            return []
        in_window = self.start <= at < self.end
        session = str(entry.get("session_id", ""))
        line_num = entry.get("line_num")
        if entry.get("error_severity") in ERRORS:
            kept = self.kept.pop(session, None)
            if in_window and kept is not None and line_num == kept + 1:
                out.append(sealed_record(at, name, offset, raw))
            return []
        statement = statement_text(str(entry.get("message", "")))
        if statement is None:
            return []
        user = entry.get("user")
        user = user if isinstance(user, str) else None
        sets_path = may_set_path(statement)
        added: list[bytes] = []
        if sets_path and self.scope is not None and self.whole and session not in self.open_sessions:
            added = self._track_path(session, statement, user)
        keep = (
            self.everything or sets_path or session in self.open_sessions
            or prefilter(statement, self.scope, user=user)  # type: ignore[arg-type]  # scope is set
        )
        if not keep:
            return added
        if isinstance(line_num, int):
            self.kept[session] = line_num
        if in_window:
            out.append(sealed_record(at, name, offset, raw))
        return added

    def _track_path(self, session: str, statement: str, user: str | None) -> list[bytes]:
        """Follows a session's search_path only as far as sealing needs: whether a whole schema is on
        it (then every later statement of the session may read the dataset). Once open, a session
        stays open: a later SET, or this one failing, could only narrow what is kept."""
        assert self.scope is not None
        result = analyse(statement, self.scope, user=user)
        if result.parsed:
            path = [user if s == "$user" else s for s in result.search_path or ()]
            if not any(s in self.whole for s in path):
                return []
        # unparsed: what it set is unknown, so the session may have any path
        self.open_sessions.add(session)
        return [b'"session_id":"' + _json_text(session) + b'"']


class PostgresLogSource:
    """The lines of PostgreSQL ``jsonlog`` files that may show a read of the dataset (module doc).

    Args:
        log_dir: the server's ``log_directory``; every ``*.json`` file in it is read, in name order.
        tables: the dataset's tables, ``schema.table`` (bare names mean ``public``); with no
            ``scope``, these make one. No tables and no scope: every statement is kept.
        database: only this database's lines (one server logs every database).
        scope: what the dataset exposes (``who_saw_what.read_scope``); replaces ``tables``.
    """

    def __init__(self, log_dir: Path | str, tables: list[str] | tuple[str, ...] = (), *,
                 database: str | None = None, scope: ReadScope | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.log_dir = Path(log_dir)
        self.database = database
        self.scope = scope if scope is not None else (ReadScope.of(tables=tables) if tables else None)
        self.max_line_bytes = max_line_bytes
        self._fence: Callable[[str], Awaitable[None]] | None = None
        self.largest_held = 0  # the most bytes of the log held at once so far (bounded: module doc)

    def scoped(self, scope: ReadScope | None) -> PostgresLogSource:
        """The same source filtering with ``scope`` (None: keep every statement)."""
        source = PostgresLogSource(self.log_dir, database=self.database, scope=scope,
                                   max_line_bytes=self.max_line_bytes)
        source._fence = self._fence
        return source

    def fenced(self, run: Callable[[str], Awaitable[None]]) -> PostgresLogSource:
        """Before reading, make sure the log holds everything logged so far: ``run(marker)`` must
        execute a statement whose text holds ``marker`` on the server (``PostgresAccess.log_fence``);
        reading waits until the marker is in the log. The logging collector writes asynchronously,
        so without this the window's last statements may not be on disk yet. (A message over the
        pipe's atomic size, 4 KiB, is reassembled by the collector and may still land after it.)"""
        source = PostgresLogSource(self.log_dir, database=self.database, scope=self.scope,
                                   max_line_bytes=self.max_line_bytes)
        source._fence = run
        return source

    def _files(self, since: datetime) -> list[Path]:
        files = sorted(self.log_dir.glob("*.json"))
        # a file last written before the scan starts cannot hold entries it needs
        return [f for f in files if datetime.fromtimestamp(f.stat().st_mtime, UTC) >= since - timedelta(seconds=5)]

    async def _wait_for_fence(self) -> None:
        if self._fence is None:
            return
        marker = f"pausegate-log-fence-{uuid.uuid4().hex}"
        sizes = {f: f.stat().st_size for f in self.log_dir.glob("*.json")}
        await self._fence(marker)
        needle = marker.encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FENCE_TIMEOUT_S
        while not await asyncio.to_thread(self._holds, needle, sizes):
            if loop.time() > deadline:
                raise TargetUnavailableError(
                    f"the server's log did not show a statement within {FENCE_TIMEOUT_S:.0f} s: is it logging "
                    f"every statement (log_statement = 'all') as jsonlog into {self.log_dir}?"
                )
            await asyncio.sleep(0.02)  # polling the collector's output: it says nothing when it writes

    def _holds(self, needle: bytes, sizes: dict[Path, int]) -> bool:
        for f in sorted(self.log_dir.glob("*.json")):
            with f.open("rb") as fh:
                fh.seek(max(sizes.get(f, 0) - len(needle), 0))
                tail = b""
                # block by block: what was logged since may be one giant line
                while chunk := fh.read(BLOCK_BYTES):
                    if needle in tail + chunk[:len(needle)] or needle in chunk:
                        return True
                    tail = chunk[-len(needle):]
        return False

    def _held(self, size: int) -> None:
        self.largest_held = max(self.largest_held, size)

    def _blocks(self, since: datetime) -> Iterator[Piece]:
        """(file name, offset, whole lines or a ``LongLine``) in file then byte order; a last line
        without its newline (being written) is left out. At most a block and a line's cap are held."""
        cap = self.max_line_bytes
        for path in self._files(since):
            with path.open("rb") as f:
                offset, rest = 0, b""
                long: LongLine | None = None
                while chunk := f.read(BLOCK_BYTES):
                    if long is not None:
                        eol = chunk.find(b"\n")
                        if eol < 0:
                            long.add(chunk)
                            continue
                        long.add(memoryview(chunk)[:eol])
                        yield path.name, long.offset, long
                        offset, long, chunk = long.offset + long.length + 1, None, chunk[eol + 1:]
                    data = rest + chunk
                    self._held(len(data))
                    cut = data.rfind(b"\n") + 1
                    if cut:
                        yield from split_long_lines(path.name, offset, data[:cut], cap)
                    offset, rest = offset + cut, data[cut:]
                    if len(rest) > cap:
                        long = LongLine(offset, rest[:cap])
                        long.add(rest)
                        rest = b""
                if long is not None or rest:
                    log.warning("pg_log_line_incomplete", file=path.name, offset=offset)

    async def _scanned(self, start: datetime, end: datetime, finish: Callable[[list[dict[str, Any]]], Any],
                       progress: Callable[[int], None] | None) -> AsyncIterator[Any]:
        start, end = check_window(start, end)
        await self._wait_for_fence()
        scanner = _Scanner(self.scope, self.database, start, end)
        blocks = self._blocks(start - LOOKBEHIND)
        scanned = 0

        def next_block() -> tuple[Any, int] | None:
            piece = next(blocks, None)
            if piece is None:
                return None
            name, offset, body = piece
            if isinstance(body, LongLine):
                return finish(scanner.capped(name, body)), body.length + 1
            return finish(scanner.scan(name, offset, body)), len(body)

        # each block is read and scanned in a worker thread: the event loop stays free
        while (done := await asyncio.to_thread(next_block)) is not None:
            scanned += done[1]
            if progress is not None:
                progress(scanned)  # a long log with few kept lines still shows it is alive
            yield done[0]

    async def records(self, start: datetime, end: datetime, *,
                      progress: Callable[[int], None] | None = None) -> AsyncIterator[Mapping[str, Any]]:
        """The kept records of the window; ``progress(bytes read)`` after each block of the log."""
        async for kept in self._scanned(start, end, lambda kept: kept, progress):
            for record in kept:
                yield record

    async def blocks(self, start: datetime, end: datetime, *,
                     progress: Callable[[int], None] | None = None) -> AsyncIterator[RecordBlock]:
        """``records`` already serialised for ``seal_blocks``, in the scanning thread: sealing then
        does no per-record work (the lines are canonical JSON, as ``seal`` would write them)."""
        def serialise(kept: list[dict[str, Any]]) -> RecordBlock | None:
            if not kept:
                return None
            data = b"".join([canonical_line(r) for r in kept])
            return RecordBlock(data, len(kept), kept[0]["at"], kept[-1]["at"])

        async for block in self._scanned(start, end, serialise, progress):
            if block is not None:
                yield block
