"""A write the evidence directory has no room for (a full disk, a quota, a file size limit) says so.

The bare ``OSError`` ("[Errno 28] No space left on device") names neither the store nor what was being
written; people watching a pause see it as the reason sealing waits, so it is raised as a retryable
``TargetUnavailableError`` that names both. Nothing half-written is kept: the callers stage a bundle and
remove the staging on any error, and a document is written to a temporary name and renamed.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pausegate.errors import TargetUnavailableError

NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextmanager
def room_for(root: Path, key: str) -> Iterator[None]:
    """Turn a write that found no room under ``root`` into an error naming ``key`` (not the directory: the
    reason goes into the pause's timeline)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        raise TargetUnavailableError(
            f"the evidence store has no room to write {key} ({exc.strerror}: disk full, quota or "
            "file size limit); the step is retried and completes once there is space"
        ) from None
