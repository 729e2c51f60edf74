"""Chained logs' heads anchored outside the medium that holds them: numbered, signed head documents in
the evidence store.

Whoever owns the API's database can disable the append-only trigger, cut a log back to an earlier
line and put back the signed head they saved then: the log and its head agree again, and the chain
rule alone finds nothing. The evidence store is out of their reach, so every append (and every
``anchor`` call, periodically) writes the new head there, once, as the next document of
``<prefix>/<log>/head-<n>``: write-once, signed by the store, never overwritten. A check reads the
newest one and holds the log to it (``pausegate.records.chain.anchor_problems``).

The documents are numbered without gaps (a writer takes the number after the newest), so the newest
is found by probing forwards from the last number this process knew, in doubling steps, then halving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from pausegate.errors import EvidenceError
from pausegate.records.chain import ChainHead

log = structlog.get_logger(__name__)

PREFIX = "api-logs"


class AnchorStore(Protocol):
    """What anchoring needs of the evidence store (``pausegate.evidence.interface.EvidenceStore``)."""

    def put_json(self, key: str, document: dict[str, Any]) -> object: ...

    def get(self, key: str) -> object | None: ...

    def read_json(self, key: str) -> Any: ...


class HeadAnchors:
    """The anchored heads of every log of one deployment, in the store ``open_store`` opens on first use."""

    def __init__(self, open_store: Callable[[], AnchorStore], *, prefix: str = PREFIX) -> None:
        self._open = open_store
        self._store: AnchorStore | None = None
        self.prefix = prefix
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> AnchorStore:
        if self._store is None:
            self._store = self._open()
        return self._store

    def key(self, name: str, number: int) -> str:
        return f"{self.prefix}/{name}/head-{number:09d}"

    def where(self, name: str) -> str:
        return f"the heads of log {name!r} anchored in the evidence store ({self.prefix}/{name}/)"

    def newest(self, name: str) -> tuple[int, ChainHead | None]:
        """The newest anchored head of log ``name``, and its number (0, None: none yet). A document that
        is not a head reads as None under its number: the check then reports it."""
        number = self._newest_number(name)
        if number == 0:
            return 0, None
        try:
            document = self.store.read_json(self.key(name, number))
            return number, ChainHead.model_validate(document["head"])
        except (EvidenceError, KeyError, TypeError, ValidationError):
            return number, None

    def anchor(self, name: str, head: ChainHead) -> None:
        """Write ``head`` as log ``name``'s next anchored head, unless one as long is anchored already. A
        store that cannot be written is logged, never fatal: the log itself is appended all the same."""
        with self._lock:
            try:
                for _ in range(3):
                    number, newest = self.newest(name)
                    if newest is not None and newest.lines >= head.lines:
                        return
                    try:
                        self.store.put_json(self.key(name, number + 1),
                                            {"log": name, "head": head.model_dump(mode="json")})
                    except EvidenceError:
                        continue  # another replica took that number first: look again
                    self._known[name] = number + 1
                    return
                log.error("log_head_not_anchored", log=name, lines=head.lines, detail="the next number stayed taken")
            except Exception as exc:  # the evidence store is down: the next append or period anchors it
                log.error("log_head_not_anchored", log=name, lines=head.lines, error=str(exc)[:300])

    def _newest_number(self, name: str) -> int:
        def taken(number: int) -> bool:
            return self.store.get(self.key(name, number)) is not None

        low = self._known.get(name, 0)  # taken (or 0)
        if low and not taken(low):
            low = 0  # a store other than the one this process wrote to
        step = 1
        high = low + step
        while taken(high):
            low, step = high, step * 2
            high = low + step
        while high - low > 1:  # low is taken, high is not
            middle = (low + high) // 2
            if taken(middle):
                low = middle
            else:
                high = middle
        self._known[name] = low
        return low

    def log(self, name: str) -> LogAnchor:
        """Log ``name``'s anchored heads."""
        return LogAnchor(self, name)


class LogAnchor:
    """One log's anchored heads."""

    def __init__(self, anchors: HeadAnchors, name: str) -> None:
        self.anchors = anchors
        self.name = name

    @property
    def where(self) -> str:
        return self.anchors.where(self.name)

    def newest(self) -> tuple[int, ChainHead | None]:
        return self.anchors.newest(self.name)

    def anchor(self, head: ChainHead) -> None:
        self.anchors.anchor(self.name, head)
