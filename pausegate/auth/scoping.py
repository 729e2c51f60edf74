"""Roles held for one program, resolved for the program a request acts on before any rule runs.

An authenticated actor carries its global ``roles`` and its ``program_roles`` (``ciso@employee-telemetry``
for a local user, the group ``pausegate:employee-telemetry:ciso`` for an OIDC subject). Every route
under ``/v1`` depends on ``resolve_program_roles`` first: when the request names a program (the
``program`` path parameter, or the ``program`` field of a JSON body such as the trigger's), the actor
the route sees holds exactly the roles effective for that program. Rules, refusal records and the
workflow updates the route sends all see those, never the roles held for other programs.
"""

from __future__ import annotations

import json

from starlette.requests import Request

from pausegate.models.people import Actor


async def _program_of(request: Request) -> str | None:
    program = request.path_params.get("program")
    if isinstance(program, str):
        return program
    if request.method != "POST" or "json" not in request.headers.get("content-type", ""):
        return None
    try:
        # The gate has bounded the body already, and FastAPI has read it: this reads the cached bytes.
        body = json.loads(await request.body())
    except ValueError:
        return None
    named = body.get("program") if isinstance(body, dict) else None
    return named if isinstance(named, str) else None


async def resolve_program_roles(request: Request) -> None:
    """Replace the verified actor with its roles for the program the request acts on, if it names one."""
    actor = getattr(request.state, "actor", None)
    if not isinstance(actor, Actor) or not actor.program_roles:
        return
    program = await _program_of(request)
    if program is not None:
        request.state.actor = actor.for_program(program)
