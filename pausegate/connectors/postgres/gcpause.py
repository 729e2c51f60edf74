"""The cyclic garbage collector paused while a company's catalog is turned into rows.

Reading, planning and deriving the scope of 50,000 roles builds hundreds of thousands of small
acyclic objects; each full pass of the collector walks all of them, which doubled those steps'
time. The pause is counted, so overlapping steps (the scope document is built in a thread while
the database is asked) re-enable the collector only when the last of them ends, and only if it was
enabled when the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
