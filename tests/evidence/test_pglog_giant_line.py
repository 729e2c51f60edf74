"""One giant log line cannot exhaust the log reader: it is read as a stream, sealed as its first bytes,
its true length and the digest of all of it, counted as a statement nobody could read, and the lines
after it are read as usual."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path
from typing import Any

from pausegate.analysis.pglog_lines import capped_fields, is_capped, original_line
from pausegate.analysis.who_saw_what import WhoSawWhatBuilder
from pausegate.connectors.audit import pglog
from pausegate.connectors.audit.pglog import PostgresLogSource
from tests.support.fault_report import record_result

from .test_pglog import SCOPE, WINDOW, Log

MIB = 1024 * 1024
STATEMENT_CHARS = 48 * MIB  # control characters: jsonlog writes each as six bytes (\u0001)
ESCAPED = b"\\u0001"


def giant_line(log: Log) -> tuple[bytes, bytes]:
    """The giant statement's line cut in two around where its control characters go: (before, after)."""
    marker = "\x00MARK\x00"
    line = log.add("mallory", f"statement: SELECT '{marker}' FROM telemetry.keystrokes", session="s2")
    escaped = json.dumps(marker)[1:-1].encode()
    before, _, after = line.partition(escaped)
    log.lines.pop()
    return before, after


def write_log(directory: Path) -> tuple[Path, int, int, str, list[bytes]]:
    """A log: a read, the giant statement, then two more reads. Written in pieces, never held whole;
    returns (file, the giant line's offset, its length, its SHA-256, the lines after it)."""
    log = Log(directory)
    first = log.add("alice", "statement: SELECT * FROM telemetry.keystrokes")
    before, after = giant_line(log)
    later = [log.add("bob", "statement: SELECT count(*) FROM telemetry.keystrokes", session="s3"),
             log.add("carol", "statement: SELECT * FROM analytics.recent_keystrokes", session="s4")]
    digest = hashlib.sha256()
    length = 0
    piece = ESCAPED * MIB
    with log.path.open("wb") as out:
        out.write(first + b"\n")
        offset = out.tell()
        for part in (before, *([piece] * (STATEMENT_CHARS // MIB)), after):
            out.write(part)
            digest.update(part)
            length += len(part)
        out.write(b"\n" + b"".join(line + b"\n" for line in later))
    return log.path, offset, length, digest.hexdigest(), later


class TestAGiantLine:
    async def test_it_is_sealed_capped_in_bounded_memory_and_the_lines_after_it_are_read(
        self, tmp_path: Path
    ) -> None:
        path, offset, length, sha256, later = write_log(tmp_path)
        assert length > STATEMENT_CHARS * 6  # the line on disk: 288 MiB and the statement around it

        source = PostgresLogSource(tmp_path, scope=SCOPE)
        tracemalloc.start()
        try:
            records = [dict(r) async for r in source.records(*WINDOW)]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        # Bounded: a block and a line's cap at most, never the line (a tenth of it here).
        assert source.largest_held <= pglog.BLOCK_BYTES + pglog.MAX_LINE_BYTES
        assert peak < 64 * MIB, f"the reader held {peak / MIB:.0f} MiB"

        capped = [r for r in records if is_capped(r)]
        assert len(capped) == 1
        record = capped[0]
        assert (record["file"], record["offset"], record["length"], record["sha256"]) == (
            path.name, offset, length, sha256)
        assert len(record["head"].encode()) <= pglog.MAX_LINE_BYTES
        assert record["head"].startswith('{"timestamp":') and ESCAPED.decode() in record["head"]
        fields = capped_fields(record)
        assert fields is not None and fields["user"] == "mallory"

        # The lines after it are still read, as the server's own bytes.
        whole = [original_line(r) for r in records if not is_capped(r)]
        assert whole[-2:] == later and len(whole) == 3

        builder = WhoSawWhatBuilder(SCOPE)
        await builder.add(records)
        report = await builder.finish()
        assert report.unparsed == 1 and report.unparsed_users == ["mallory"]
        assert "over the reader's cap" in report.unparsed_statements[0].error
        record_result("one giant log line (48 MiB statement of control characters)", "read the window's log",
                      injected=1,
                      outcome="sealed capped with its length and digest; counted unparsed; later lines read",
                      line_bytes=length, peak_bytes=peak)

    async def test_a_long_line_inside_a_block_is_capped_alike(self, tmp_path: Path) -> None:
        log = Log(tmp_path)
        log.add("alice", "statement: SELECT * FROM telemetry.keystrokes")
        long = log.add("mallory", "statement: SELECT '" + "x" * 5000 + "' FROM telemetry.keystrokes", session="s2")
        after = log.add("bob", "statement: SELECT count(*) FROM telemetry.keystrokes", session="s3")
        log.write()

        records: list[dict[str, Any]] = [
            dict(r) async for r in PostgresLogSource(tmp_path, scope=SCOPE, max_line_bytes=1000).records(*WINDOW)
        ]

        capped = [r for r in records if is_capped(r)]
        assert [(r["length"], r["sha256"]) for r in capped] == [(len(long), hashlib.sha256(long).hexdigest())]
        assert len(capped[0]["head"]) == 1000
        assert original_line(records[-1]) == after and len(records) == 3
