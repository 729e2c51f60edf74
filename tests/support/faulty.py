"""A ``DatasetAccess`` that lets the real call commit and then fails to answer: ambiguous success.

Wraps any dataset access connector (PostgreSQL's in practice). In ``ambiguous_rate`` of the
calls that change access (revoke, restore) the real call runs to completion, its effect is
committed, and the caller gets ``TargetUnavailableError`` instead of the result, exactly as
when a connection drops after COMMIT. ``hold`` keeps a call waiting at a named point
(``before:revoke``, ``after:restore``...), writing a marker file first, so a test can kill
the process there. ``injected`` and ``calls`` count what happened.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pausegate.connectors.interfaces import DatasetAccess
from pausegate.connectors.scope_facts import DerivedScope, ScopeFacts
from pausegate.errors import TargetUnavailableError
from pausegate.models.access import DatasetCheck, ExposureScope, GrantSpec, RestoreResult, RevokeOutcome, RoleAccess
from pausegate.models.runbook import DatasetSpec

T = TypeVar("T")

CHANGING = frozenset({"revoke", "restore"})


class FaultyAccess:
    """``DatasetAccess`` with injected ambiguous failures and holds, around a real one.

    Args:
        inner: the real connector.
        ambiguous_rate: share of revoke/restore calls that commit and then raise ``TargetUnavailableError``.
        seed: seeds the choice of calls.
        hold: points (``before:<op>`` / ``after:<op>``) where the first such call waits for ``hold_seconds``.
        marker_dir: where a file named after the point is written when a call reaches it.
    """

    def __init__(
        self,
        inner: DatasetAccess,
        *,
        ambiguous_rate: float = 0.0,
        seed: int = 0,
        hold: Iterable[str] = (),
        hold_seconds: float = 3600.0,
        marker_dir: Path | None = None,
    ) -> None:
        self._inner = inner
        self._rate = ambiguous_rate
        self._rng = random.Random(seed)
        self._hold = set(hold)
        self._hold_seconds = hold_seconds
        self._markers = marker_dir
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    async def _point(self, point: str) -> None:
        if self._markers is not None:
            self._markers.mkdir(parents=True, exist_ok=True)
            (self._markers / point.replace(":", "-")).touch()
        if point in self._hold:
            self._hold.discard(point)
            self.injected[f"hold:{point}"] += 1
            await asyncio.sleep(self._hold_seconds)

    async def _call(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[op] += 1
        await self._point(f"before:{op}")
        result = await call()
        await self._point(f"after:{op}")
        if op in CHANGING and self._rate and self._rng.random() < self._rate:
            self.injected[f"ambiguous:{op}"] += 1
            raise TargetUnavailableError(f"{op}: connection lost after the change committed (injected)")
        return result

    async def record_scope(self, spec: DatasetSpec) -> ExposureScope:
        return await self._call("record_scope", lambda: self._inner.record_scope(spec))

    async def revoke(self, spec: DatasetSpec, scope: ExposureScope) -> RevokeOutcome:
        return await self._call("revoke", lambda: self._inner.revoke(spec, scope))

    async def revoke_capturing(
        self,
        spec: DatasetSpec,
        persist: Callable[[dict[str, Any]], Awaitable[T]],
        *,
        earlier_snapshot: Mapping[str, Any] | None = None,
    ) -> tuple[RevokeOutcome, T]:
        return await self._call(
            "revoke", lambda: self._inner.revoke_capturing(spec, persist, earlier_snapshot=earlier_snapshot)
        )

    def derive_scope(self, spec: DatasetSpec, snapshot: Mapping[str, Any]) -> ExposureScope:
        return self._inner.derive_scope(spec, snapshot)

    def scope_from_snapshot(self, spec: DatasetSpec, snapshot: Mapping[str, Any]) -> DerivedScope:
        return self._inner.scope_from_snapshot(spec, snapshot)

    async def verify_facts(self, spec: DatasetSpec, facts: ScopeFacts) -> list[RoleAccess]:
        return await self._call("verify", lambda: self._inner.verify_facts(spec, facts))

    async def verify(self, spec: DatasetSpec, scope: ExposureScope) -> list[RoleAccess]:
        return await self._call("verify", lambda: self._inner.verify(spec, scope))

    async def check(self, spec: DatasetSpec, scope: ExposureScope) -> DatasetCheck:
        return await self._call("check", lambda: self._inner.check(spec, scope))

    async def check_plan(self, spec: DatasetSpec, grants: list[GrantSpec]) -> list[str]:
        return await self._call("check_plan", lambda: self._inner.check_plan(spec, grants))

    async def restore(self, spec: DatasetSpec, grants: list[GrantSpec]) -> RestoreResult:
        return await self._call("restore", lambda: self._inner.restore(spec, grants))

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()
