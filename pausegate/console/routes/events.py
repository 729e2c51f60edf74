"""Live fragments as server-sent events: the board's rows, a pause's summary, ledger and timeline, the
plan page's approvals. Each event carries HTML rendered by the page's own partial templates for the
person watching (their redaction, their "you may"), named after the element it replaces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from pausegate.auth.base import AuthenticationError
from pausegate.console import bridge
from pausegate.console.bridge import refusal_of
from pausegate.console.live import Snapshot
from pausegate.console.pages import Visitor, VisitorDep, render
from pausegate.console.routes.board import board_context, shown_programs
from pausegate.console.routes.pause import ProgramPath, pause_context
from pausegate.console.routes.plan import plan_context
from pausegate.policy import authority

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/console", include_in_schema=False)

Fragments = Callable[[Snapshot], Awaitable[tuple[str, dict[str, str]]]]
"""From statuses just read: the version of what this person is shown (``bridge.version_of`` of their
views) and each fragment's HTML."""
SESSION_ENDED = "session"
"""The event that tells a page its session ended (the page shows a sign-in link in its place)."""


def event(name: str, html: str, event_id: str | None = None) -> str:
    """One server-sent event; every line of the fragment on its own ``data:`` line (the browser joins them)."""
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    identity = f"id: {event_id}\n" if event_id else ""
    return f"event: {name}\n{identity}{data}\n"


async def _still_signed_in(visitor: Visitor) -> bool:
    if visitor.console.sessions.peek(visitor.session_id) is None:
        return False
    try:
        await visitor.api.authenticator.authenticate(visitor.session.token)
    except AuthenticationError:
        visitor.console.sessions.close(visitor.session_id)
        return False
    return True


def announcement(before: Snapshot | None, now: Snapshot) -> str | None:
    """A sentence for screen readers when a watched pause changed state (the fragments themselves are
    not live regions: re-announcing a whole table at every change would drown the page)."""
    if before is None:
        return None
    changes = []
    for program, status in now.items():
        old = before.get(program)
        if status is not None and (old is None or old.phase != status.phase):
            changes.append(f"{program} is now {status.phase.value}.")
    return " ".join(changes) or None


def stream(visitor: Visitor, programs: list[str], fragments: Fragments, known: str | None) -> StreamingResponse:
    """Events for ``programs`` until the stream's lifetime is up (the browser then reconnects) or the
    session ends (the page is told, and the stream stops).

    ``known`` is the version of the statuses the page already shows (the page's own, or on a reconnect
    the last event id the browser saw): while the statuses are still that version nothing is sent, so a
    reconnect does not replace (and re-announce) what the page shows."""
    console = visitor.console
    watch = console.watch(visitor.api.client)

    async def events() -> AsyncIterator[str]:
        # Reconnect after 2 s when the stream ends or breaks.
        yield "retry: 2000\n\n"
        loop = asyncio.get_running_loop()
        end = loop.time() + console.stream_seconds
        beat = loop.time() + console.heartbeat_seconds
        sent: dict[str, str] = {}
        shown = known
        previous: Snapshot | None = None
        async with watch.watching(programs) as watcher:
            while (left := end - loop.time()) > 0:
                changed = await watcher.next(max(0.0, min(beat - loop.time(), left)))
                if not await _still_signed_in(visitor):
                    yield event(SESSION_ENDED, console.templates.render("_session_ended.html"))
                    return
                if changed is None:
                    if loop.time() >= beat:
                        yield ": alive\n\n"
                        beat = loop.time() + console.heartbeat_seconds
                    continue
                try:
                    version, rendered = await fragments(changed)
                except Exception as exc:  # e.g. the runbook stopped validating: end; the reconnect shows why
                    log.warning("console_fragment_failed", error=str(exc)[:200], kind=type(exc).__name__)
                    return
                if version == shown:
                    # Nothing this person may see changed (a change only to what their view hides, or the
                    # page shows this already): send nothing, not even sooner a heartbeat, so that the stream
                    # does not tell them when something hidden changed.
                    if previous is None:
                        sent = rendered
                    previous = changed
                    continue
                spoken = announcement(previous, changed)
                previous, shown = changed, version
                batch = [(name, html) for name, html in rendered.items() if sent.get(name) != html]
                if spoken:
                    batch.append(("announce", spoken))
                if not batch:
                    # Nothing of this page changed: still move the browser's last event id on (an event
                    # without data dispatches nothing, but sets the id a reconnect sends back).
                    yield f"id: {version}\n\n"
                for index, (name, html) in enumerate(batch):
                    sent[name] = html
                    # The last event of a batch carries the version: a reconnecting browser sends it back.
                    yield event(name, html, version if index == len(batch) - 1 else None)
                beat = loop.time() + console.heartbeat_seconds

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def known_version(request: Request, page_version: str) -> str:
    return request.headers.get("last-event-id") or page_version


Version = Annotated[str, Query(max_length=64)]


@router.get("/events")
async def board_events(request: Request, visitor: VisitorDep, v: Version = "") -> Response:
    templates = visitor.console.templates

    async def fragments(snapshot: Snapshot) -> tuple[str, dict[str, str]]:
        context = board_context(visitor, snapshot)
        return context["version"], {"board": templates.render("_board_rows.html", **context)}

    return stream(visitor, sorted(shown_programs(visitor)), fragments, known_version(request, v))


@router.get("/pauses/{program}/events")
async def pause_events(
    request: Request,
    visitor: VisitorDep,
    program: ProgramPath,
    page: Annotated[Literal["pause", "plan", "report"], Query()] = "pause",
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
    digest: Annotated[str, Query(max_length=64)] = "",
    v: Version = "",
) -> Response:
    templates = visitor.console.templates
    runbook = visitor.api.runbook(program)  # an unknown program: 404 before any stream opens
    who = visitor.actor.for_program(program)
    if not authority.holds_program_role(runbook, who):
        # Live events are for people with a role in the program, as the board is (pages stay as the API shows them).
        refusal = refusal_of(authority.role_refusal(f"following {program} live", authority.program_roles(runbook), who))
        assert refusal is not None
        return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)

    async def fragments(snapshot: Snapshot) -> tuple[str, dict[str, str]]:
        status = snapshot.get(program)
        if status is None:
            return bridge.version_of([None]), {}
        seen = await bridge.seen_of(visitor.api, program, runbook, who, status)
        if page == "plan":
            context = plan_context(seen)
            return seen.version, {
                "summary": templates.render("_summary.html", **context),
                "approvals": templates.render("_approvals.html", **context),
                "plan-notice": templates.render("_plan_notice.html", page_digest=digest, **context),
            }
        context = pause_context(seen, actor=actor, action=action, with_items=False)
        shown = {"summary": templates.render("_summary.html", **context)}
        if page == "pause":
            shown["ledger"] = templates.render("_ledger.html", **context)
            shown["timeline"] = templates.render("_timeline_rows.html", **context)
        return seen.version, shown

    return stream(visitor, [program], fragments, known_version(request, v))
