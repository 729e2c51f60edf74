"""Canonical JSON, key validation and owner-only, crash-safe file writes shared by the store."""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from pausegate.canonical import canonical_json, sha256_hex
from pausegate.errors import EvidenceError

__all__ = ["canonical_json", "sha256_hex"]  # re-exported: the store's modules read them from here

DIR_MODE = 0o700
FILE_MODE = 0o600
BUNDLE_SUFFIX = ".bundle"
DOCUMENT_SUFFIX = ".json"
SIGNATURE_SUFFIX = ".sig"

# Segments starting with "." are reserved for the store's own temporary and chain files,
# and ".bundle" would make a directory indistinguishable from a sealed bundle.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_KEY_LENGTH = 900  # uri must fit in EvidenceRef.uri (1000)
MAX_DEPTH = 16


def validate_key(key: str) -> tuple[str, ...]:
    """The key's path segments, or ``EvidenceError`` if it could leave the store's directory
    or collide with the store's own files."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise EvidenceError(f"invalid evidence key {key!r}: empty or longer than {MAX_KEY_LENGTH}")
    parts = tuple(key.split("/"))
    if len(parts) > MAX_DEPTH:
        raise EvidenceError(f"invalid evidence key {key!r}: deeper than {MAX_DEPTH}")
    for part in parts:
        if part in ("", ".", "..") or not _SEGMENT.fullmatch(part) or part.endswith(BUNDLE_SUFFIX):
            raise EvidenceError(
                f"invalid evidence key {key!r}: segment {part!r} must match {_SEGMENT.pattern} "
                f"and not end in {BUNDLE_SUFFIX}"
            )
    return parts


# orjson is byte-for-byte identical to ``canonical_json`` only for plain values: it writes floats
# in a different notation (1.5e-05 vs 0.000015) and NaN as null, formats datetimes with second
# offsets differently, and handles subclasses (enums, str subclasses) its own way. Values of any
# other type than these take the reference encoder, so the fast path can never change a record's
# bytes. Keys need no check: orjson refuses non-str keys, and a str subclass key is written as
# its text by both encoders.


def _orjson_compatible(values: Iterable[Any]) -> bool:
    # a plain loop with identity tests: this runs once per record, and set-building or a
    # generator per level costs more than orjson's whole serialisation; a list of scalars (the
    # common nesting: a record's objects) is checked in place, without a call per list
    for v in values:
        t = type(v)
        if t is str or t is int or v is None or t is bool:
            continue
        if t is list:
            for x in v:
                u = type(x)
                if u is str or u is int or x is None or u is bool:
                    continue
                if (u is dict or u is list) and _orjson_compatible((x,)):
                    continue
                return False
        elif t is dict:
            if not _orjson_compatible(v.values()):
                return False
        else:
            return False
    return True


_NEWLINE = b"\n"


def canonical_line(document: Any) -> bytes:
    """``canonical_json(document) + b"\n"``, several times faster for plain JSON records."""
    if type(document) is dict:
        try:
            if _orjson_compatible(document.values()):
                # the concatenation also matters for memory: orjson's result keeps a ~4 KiB
                # allocation however short the JSON, and a chunk holds thousands of lines
                return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + _NEWLINE
        except (orjson.JSONEncodeError, RecursionError):
            pass  # e.g. integers beyond 64 bits, non-str keys, deep nesting: the reference decides
    return canonical_json(document) + _NEWLINE


def canonical_lines(documents: list[Any]) -> bytes:
    """``b"".join(canonical_line(d) for d in documents)``, with the per-record work done in one
    comprehension (a block of records is serialised at once: no call per record but orjson's)."""
    dumps, sort, compatible, line = orjson.dumps, orjson.OPT_SORT_KEYS, _orjson_compatible, canonical_line
    try:
        return _NEWLINE.join(
            [
                dumps(d, option=sort) if type(d) is dict and compatible(d.values()) else line(d)[:-1]
                for d in documents
            ]
            + [b""]
        )
    except (orjson.JSONEncodeError, RecursionError):
        return b"".join([line(d) for d in documents])  # one record the reference decides on


def canonical_document(document: Any) -> bytes:
    """``canonical_json(document)``, several times faster for plain JSON documents (an exposure
    scope of a million access paths: seconds, not tens of seconds)."""
    if type(document) is dict or type(document) is list:
        try:
            values = document.values() if type(document) is dict else document
            if _orjson_compatible(values):
                return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, RecursionError):
            pass  # the reference decides, as for canonical_line
    return canonical_json(document)


def ensure_dir(root: Path, directory: Path) -> None:
    """Create ``directory`` (under ``root``) with owner-only permissions on every level we create,
    and refuse if a symlink makes it resolve outside ``root``."""
    missing: list[Path] = []
    cur = directory
    while not cur.exists():
        missing.append(cur)
        if cur == cur.parent:
            break
        cur = cur.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
    resolved = directory.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise EvidenceError(f"{directory} resolves outside the evidence directory")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` (0600), failing with FileExistsError if it exists."""
    fd = write_unsynced(path, data)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_unsynced(path: Path, data: bytes | memoryview) -> int:
    """``write_new`` without the fsync: returns the open descriptor, whose owner must fsync
    and close it (so that a sealer can overlap many fsyncs with its other work)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        # the mode given to open is filtered by the umask
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except BaseException:
        os.close(fd)
        raise
    return fd


def publish_once(path: Path, data: bytes) -> bool:
    """Atomically make ``path`` hold ``data`` unless it already exists (readers never see a
    partial file: the content is written to a temporary name, then hard-linked into place).
    Returns False if ``path`` already existed (its content untouched)."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    write_new(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


@contextmanager
def directory_lock(directory: Path, name: str = ".lock") -> Iterator[None]:
    """Exclusive across processes and threads (flock is per open file description)."""
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` (for small mutable bookkeeping files, never evidence)."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    write_new(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)
