"""The worked example's curious employees: while the telemetry is readable company-wide, some of
them browse it, a few directly and a few through the analytics view someone made for a dashboard
(``analytics.recent_keystrokes``), so that the walk-through's "who saw what" has someone to name.

Once the pause has revoked access their reads are refused (permission denied), as they should be;
the browsing goes on regardless, as people would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import psycopg
import structlog

from pausegate.reference.example.seed import employee_role

log = structlog.get_logger(__name__)

# (employee number, what they run): numbers past the seeded employees wrap around
BROWSERS: tuple[tuple[int, str], ...] = (
    (3, "SELECT employee, window_title, typed_content FROM telemetry.keystrokes ORDER BY captured_at DESC LIMIT 20"),
    (7, "SELECT * FROM analytics.recent_keystrokes WHERE employee = 'employee_0001' LIMIT 50"),
    (12, "SELECT employee, count(*) FROM telemetry.mouse_events GROUP BY employee"),
    (21, "SELECT window_title, typed_content FROM analytics.recent_keystrokes LIMIT 20"),
)


def browsers(employees: int) -> list[tuple[str, str]]:
    """(login role, statement) of each browsing employee among ``employees`` seeded ones."""
    return [(employee_role((n - 1) % employees + 1), statement) for n, statement in BROWSERS]


def browse_once(dsn_for: Callable[[str], str], employees: int) -> dict[str, bool]:
    """One round of browsing; role -> whether its read was allowed."""
    allowed: dict[str, bool] = {}
    for role, statement in browsers(employees):
        try:
            with psycopg.connect(dsn_for(role), autocommit=True, connect_timeout=5) as conn:
                conn.execute(statement).fetchall()
            allowed[role] = allowed.get(role, True)
        except psycopg.errors.InsufficientPrivilege:
            allowed[role] = False  # after the pause: refused
        except psycopg.OperationalError as exc:  # the server going down with the stack
            log.debug("browse_failed", role=role, error=str(exc))
            allowed[role] = False
    return allowed


@contextlib.asynccontextmanager
async def browsing(dsn_for: Callable[[str], str], employees: int, every_seconds: float) -> AsyncIterator[None]:
    """A first round at once (so a pause right after start has reads to report), then one every
    ``every_seconds`` until the block ends."""
    await asyncio.to_thread(browse_once, dsn_for, employees)

    async def rounds() -> None:
        while True:
            await asyncio.sleep(every_seconds)  # a workload's pace, not synchronisation
            await asyncio.to_thread(browse_once, dsn_for, employees)

    task = asyncio.create_task(rounds())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
