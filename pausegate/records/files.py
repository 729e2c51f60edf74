"""The file medium of a chained log: JSON lines at ``path``, the signed head in ``<name>.head.json`` beside it.

Both files are owner-only; each append is fsynced. Appends from several processes are serialised by
an exclusive lock on the log file (``flock``), held for as long as the caller holds the log.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from pausegate.canonical import canonical_json
from pausegate.evidence.files import FILE_MODE, ensure_dir, replace_file
from pausegate.records.chain import ChainHead
from pausegate.records.log import Stored

_TAIL_BYTES = 64 * 1024  # a line is bounded well below this (chain.MAX_LINE_BYTES)


def head_path_of(path: Path) -> Path:
    """``api-refusals.jsonl`` → ``api-refusals.head.json``."""
    return path.with_name(path.name.removesuffix(".jsonl") + ".head.json")


class FileMedium:
    """A chained log's lines in the file ``path``, its head beside it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()
        self.head_path = head_path_of(self.path)

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def head_where(self) -> str:
        return str(self.head_path)

    @contextmanager
    def hold(self) -> Iterator[HeldFile]:
        ensure_dir(self.path.parent, self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield HeldFile(self, fd)
        finally:
            os.close(fd)

    @contextmanager
    def read(self) -> Iterator[Stored]:
        if not self.path.exists():
            yield Stored(lines=None, head=self.read_head, head_stored=self.head_path.exists())
            return
        with self.path.open("rb") as f:
            yield Stored(lines=enumerate(f, start=1), head=self.read_head, head_stored=self.head_path.exists())

    def read_head(self) -> ChainHead | None:
        try:
            return ChainHead.model_validate(json.loads(self.head_path.read_bytes()))
        except (OSError, ValueError, ValidationError):
            return None

    def write_head(self, head: ChainHead) -> None:
        replace_file(self.head_path, canonical_json(head.model_dump(mode="json")))

    def replace(self, lines: Iterator[bytes], head: ChainHead | None) -> None:
        """Write these lines (no newlines) and this head as the whole log: a copy made elsewhere
        (``pausegate.records.postgres.export``), to be checked offline."""
        ensure_dir(self.path.parent, self.path.parent)
        replace_file(self.path, b"".join(line + b"\n" for line in lines))
        self.path.chmod(FILE_MODE)
        if head is not None:
            self.write_head(head)


class HeldFile:
    """The log file, open and locked."""

    def __init__(self, medium: FileMedium, fd: int) -> None:
        self._medium = medium
        self._fd = fd

    def tail(self) -> tuple[int | None, bytes | None]:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0, None
        start = max(0, size - _TAIL_BYTES)
        return None, os.pread(self._fd, size - start, start).rstrip(b"\n").rsplit(b"\n", 1)[-1]

    def count(self) -> int:
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0).count(b"\n") if size else 0

    def head(self) -> ChainHead | None:
        return self._medium.read_head()

    def write(self, number: int, line: bytes, head: ChainHead) -> None:
        os.write(self._fd, line + b"\n")
        os.fsync(self._fd)
        self._medium.write_head(head)
