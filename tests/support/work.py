"""Work counted, not timed: the lines of chosen source files that a call executes.

A count is the same on a loaded machine as on an idle one (a clock is not), so a test can bound how
the work grows with its input without a timing assertion."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import FrameType


def lines_executed(fn: Callable[[], object], counts: Callable[[str], bool], *, threads: bool = False) -> int:
    """Lines executed by ``fn`` in the files for which ``counts(filename)`` is true; with ``threads``,
    also in the threads ``fn`` starts."""
    n = 0

    def line(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal n
        n += event == "line"
        return line

    def call(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        return line if counts(frame.f_code.co_filename) else None

    if threads:
        threading.settrace(call)
    sys.settrace(call)
    try:
        fn()
    finally:
        sys.settrace(None)
        if threads:
            threading.settrace(None)  # type: ignore[arg-type]
    return n
