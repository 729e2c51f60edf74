"""A pause's page: its state, the containment ledger, the checklist (completed in place), the
exposure (review roles), the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from pausegate.console import bridge
from pausegate.console.bridge import Refusal, Seen, refusal_of
from pausegate.console.forms import Form
from pausegate.console.pages import Visitor, VisitorDep, done, posted, render
from pausegate.models.checklist import ItemStatus
from pausegate.models.state import TimelineEntry

router = APIRouter(prefix="/console/pauses", include_in_schema=False)

ProgramPath = Annotated[str, PathParam(max_length=200)]
Filter = Annotated[str, Query(max_length=200)]


@dataclass(frozen=True)
class ItemRow:
    """A checklist item as the signed-in person sees it."""

    item: ItemStatus
    description: str
    depends_on: list[tuple[str, bool]]
    """Each dependency's id and whether it is done."""
    overdue: bool
    blocked: str | None
    """Why this person may not complete it now (None: they may)."""


def item_rows(seen: Seen, now: datetime) -> list[ItemRow]:
    descriptions = {i.id: i.description for i in seen.runbook.checklist}
    done_by_id = {i.id: i.done for i in seen.view.checklist}
    return [
        ItemRow(
            item=item,
            description=descriptions.get(item.id, "") or "",
            depends_on=[(d, done_by_id.get(d, False)) for d in item.depends_on],
            overdue=item.due_at is not None and not item.done and item.due_at < now,
            blocked=bridge.completion_blocked(seen, item),
        )
        for item in seen.view.checklist
    ]


def timeline_of(seen: Seen, actor: str, action: str) -> tuple[list[TimelineEntry], list[str], list[str]]:
    """The timeline filtered by actor and action (newest first), with every actor and action to filter by."""
    entries = seen.view.timeline
    actors = sorted({e.actor for e in entries})
    actions = sorted({e.action for e in entries})
    shown = [e for e in entries if (not actor or e.actor == actor) and (not action or e.action == action)]
    return list(reversed(shown)), actors, actions


def pause_context(seen: Seen, *, actor: str = "", action: str = "", with_items: bool = True) -> dict[str, Any]:
    """What a pause's page shows (the page and its live fragments alike; the fragments leave the
    checklist out, which is not live: it holds the forms people are typing into)."""
    now = datetime.now(UTC)
    timeline, actors, actions = timeline_of(seen, actor, action)
    return {
        "seen": seen,
        "view": seen.view,
        "now": now,
        "items": item_rows(seen, now) if with_items else [],
        "timeline": timeline,
        "timeline_actors": actors,
        "timeline_actions": actions,
        "filters": {"actor": actor, "action": action},
        "tab": "pause",
    }


def page_url(program: str) -> str:
    return f"/console/pauses/{quote(program, safe='')}"


async def _page(request: Request, visitor: Visitor, program: str, *, status: int = 200,
                refusal: Refusal | None = None, posted_item: str | None = None, form: Form | None = None,
                actor: str = "", action: str = "") -> Response:
    try:
        seen = await bridge.read(visitor.api, program, visitor.actor)
    except Exception as exc:
        failed = refusal_of(exc)
        if failed is None:
            raise
        return render(request, visitor, "error.html", status=failed.status, refusal=failed)
    return render(request, visitor, "pause.html", status=status, refusal=refusal, posted_item=posted_item,
                  posted=dict(form.pairs) if form else {}, **pause_context(seen, actor=actor, action=action))


@router.get("/{program}")
async def pause_page(request: Request, visitor: VisitorDep, program: ProgramPath, actor: Filter = "",
                     action: Filter = "") -> Response:
    return await _page(request, visitor, program, actor=actor, action=action)


@router.get("/{program}/timeline/archived")
async def archived_timeline_page(request: Request, visitor: VisitorDep, program: ProgramPath,
                                 page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> Response:
    """The timeline entries the workflow moved to evidence, one archived document a page, newest first.
    A person without a review role gets none: the redacted view lists no archived documents."""
    try:
        seen = await bridge.read(visitor.api, program, visitor.actor)
        refs = list(reversed(seen.view.timeline_archived))
        page = min(page, max(1, len(refs)))
        entries = await bridge.archived_timeline(visitor.api, refs[page - 1]) if refs else []
    except Exception as exc:
        failed = refusal_of(exc)
        if failed is None:
            raise
        return render(request, visitor, "error.html", status=failed.status, refusal=failed)
    return render(request, visitor, "timeline_archived.html", seen=seen, view=seen.view, tab="pause",
                  timeline=list(reversed(entries)), filters={"actor": "", "action": ""}, page=page,
                  pages=len(refs), ref=refs[page - 1] if refs else None)


def evidence_from(form: Form) -> list[dict[str, str]]:
    """The evidence fields of a completion form: ``evidence-name-N`` with its ``-uri-N`` and ``-sha256-N``."""
    attached: list[dict[str, str]] = []
    for n in range(50):
        name = form.get(f"evidence-name-{n}")
        if not name:
            break
        uri = form.get(f"evidence-uri-{n}").strip()
        if not uri:
            continue  # left empty: the rule then names the missing evidence
        entry = {"name": name, "uri": uri}
        sha256 = form.get(f"evidence-sha256-{n}").strip().lower()
        if sha256:
            entry["sha256"] = sha256
        attached.append(entry)
    return attached


@router.post("/{program}/checklist/{item_id}")
async def complete_item(request: Request, program: ProgramPath,
                        item_id: Annotated[str, PathParam(max_length=100)]) -> Response:
    visitor, form = await posted(request)
    try:
        await bridge.complete(visitor.api, program, visitor.actor, item_id, evidence_from(form),
                              form.get("note").strip(), form.get("idempotency_key") or None)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return await _page(request, visitor, program, status=refusal.status, refusal=refusal, posted_item=item_id,
                           form=form)
    return done(visitor, f"{page_url(program)}#item-{quote(item_id, safe='')}", f"Checklist item {item_id} completed.")
