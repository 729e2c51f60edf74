"""The console's routes, one module per page (none of them is part of the API's OpenAPI document)."""

from __future__ import annotations

from fastapi import APIRouter

from pausegate.console.routes import board, drills, events, keys, oidc_signin, pause, plan, report, signin, signing

console_router = APIRouter(include_in_schema=False)
for _page in (signin, oidc_signin, board, pause, plan, report, events, keys, signing, drills):
    console_router.include_router(_page.router)

__all__ = ["console_router"]
