"""The worked example's curious employees: while the telemetry is readable company-wide, some of
them browse it, a few directly and a few through the analytics view someone made for a dashboard
(``analytics.recent_keystrokes``), so that the walk-through's "who saw what" has someone to name.

One of them (``COPIER``) also keeps a copy of the keystrokes in the sandbox schema and shares it with
every employee (``copy_once``): the walk-through's pause finds it, quarantines it, and the resume plan
decides what happens to it.

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


# (employee number, what they run, once): a copy kept "for later", then shared
COPIER: tuple[int, tuple[str, ...]] = (9, (
    "CREATE TABLE IF NOT EXISTS sandbox.keystrokes_for_later AS SELECT * FROM telemetry.keystrokes",
    "GRANT SELECT ON sandbox.keystrokes_for_later TO all_employees",
))


def copy_once(dsn_for: Callable[[str], str], employees: int) -> bool:
    """The curious employee copies the keystrokes into the sandbox and shares the copy; whether it worked
    (after the pause the read is refused, and the copy already made is in the quarantine)."""
    number, statements = COPIER
    try:
        with psycopg.connect(dsn_for(employee_role((number - 1) % employees + 1)), autocommit=True,
                             connect_timeout=5) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
        return True
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable, psycopg.OperationalError) as exc:
        log.debug("copy_failed", error=str(exc))
        return False


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
    """A first round at once (so a pause right after start has reads to report, and a copy to find),
    then one every ``every_seconds`` until the block ends."""
    await asyncio.to_thread(copy_once, dsn_for, employees)
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
