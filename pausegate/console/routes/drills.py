"""A program's latest drill, read-only: how it ended, the restore, its checklist, the workflow's figures
beside the prober's, its timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pausegate.console import bridge
from pausegate.console.bridge import refusal_of
from pausegate.console.pages import VisitorDep, render
from pausegate.console.routes.pause import ProgramPath

router = APIRouter(prefix="/console/drills", include_in_schema=False)


@router.get("/{program}")
async def drill_page(request: Request, visitor: VisitorDep, program: ProgramPath) -> Response:
    try:
        drill = await bridge.drill(visitor.api, program, visitor.actor)
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return render(request, visitor, "error.html", status=refusal.status, refusal=refusal)
    return render(request, visitor, "drill.html", drill=drill)
