"""The final report: rendered, and downloadable as the API serves it (Markdown, JSON)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pausegate.console import bridge
from pausegate.console.bridge import refusal_of
from pausegate.console.pages import VisitorDep, render
from pausegate.console.routes.pause import ProgramPath

router = APIRouter(prefix="/console/pauses", include_in_schema=False)


@router.get("/{program}/report")
async def report_page(request: Request, visitor: VisitorDep, program: ProgramPath) -> Response:
    try:
        seen = await bridge.read(visitor.api, program, visitor.actor)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)
    document = report = markdown = None
    refusal = None
    blocked = bridge.report_blocked(seen)
    # Only asked for when this person may read it and it exists: opening the tab is not an attempt to be refused.
    if blocked is None and seen.view.report is not None:
        try:
            document, report = await bridge.report(visitor.api, program, visitor.actor)
            if report is None:  # a document this console cannot lay out: shown as the API renders it
                markdown = await bridge.report_markdown(visitor.api, program, visitor.actor)
        except Exception as exc:
            refusal = refusal_of(exc)
            if refusal is None:
                raise
    return render(request, visitor, "report.html", status=refusal.status if refusal else 200, seen=seen,
                  view=seen.view, report=report, markdown=markdown, has_document=document is not None,
                  refusal=refusal, blocked=blocked, tab="report")


def _download(program: str, body: str, suffix: str, media_type: str) -> Response:
    # The program id is a slug (the API refuses others), so it is safe inside the quoted filename.
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="pause-report-{program}.{suffix}"'})


@router.get("/{program}/report.md")
async def report_markdown(request: Request, visitor: VisitorDep, program: ProgramPath) -> Response:
    try:
        text = await bridge.report_markdown(visitor.api, program, visitor.actor)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)
    return _download(program, text, "md", "text/markdown; charset=utf-8")


@router.get("/{program}/report.json")
async def report_json(request: Request, visitor: VisitorDep, program: ProgramPath) -> Response:
    try:
        document, _ = await bridge.report(visitor.api, program, visitor.actor)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)
    return _download(program, json.dumps(document, indent=2, ensure_ascii=False) + "\n", "json", "application/json")
