"""The reference fleet as a FastAPI app: the fleet contract under ``/v1``, test controls under ``/admin``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse

from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.models.fleet import (
    AgentPage,
    AgentState,
    AuditRecord,
    BatchRequest,
    BatchResult,
    SwitchRequest,
    SwitchState,
)
from pausegate.reference.fleet.admin import admin_router
from pausegate.reference.fleet.audit import ndjson_chunks
from pausegate.reference.fleet.auth import authenticate
from pausegate.reference.fleet.collection import UnknownDataTypeError
from pausegate.reference.fleet.faults import FaultInjector, InjectedFaultError
from pausegate.reference.fleet.fleet import (
    BadPageTokenError,
    FleetService,
    IdempotencyConflictError,
    Program,
    ProgramNotFoundError,
    SettleTimeoutError,
    SwitchDisabledError,
)
from pausegate.reference.fleet.settings import FleetSettings
from pausegate.reference.fleet.telemetry import Collector, TelemetrySink

log = structlog.get_logger("pausegate.reference.fleet")

API_ACTOR = "api"
MAX_PAGE_SIZE = 5000


def _op(request: Request) -> str:
    """The contract operation a request is (the names FaultSettings.ops uses)."""
    resource = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    return "get_switch" if resource == "switch" and request.method == "GET" else resource


async def inject_faults(request: Request, _auth: Annotated[None, Depends(authenticate)]) -> None:
    await request.app.state.faults.before_apply(request, _op(request))


def get_program(program: str, request: Request) -> Program:
    service: FleetService = request.app.state.service
    return service.program(program)


ProgramDep = Annotated[Program, Depends(get_program)]


def _json(model: AgentPage | BatchResult) -> Response:
    # Serialised once by pydantic; letting FastAPI validate the returned model again would
    # double the cost of a 5,000-agent batch.
    return Response(model.model_dump_json(), media_type="application/json")


contract = APIRouter(prefix="/v1/programs/{program}", dependencies=[Depends(inject_faults)], tags=["fleet"])


@contract.get("/agents", response_model=AgentPage, summary="List a program's agents, paged")
async def list_agents(
    program: ProgramDep,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page")] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 1000,
    state: Annotated[AgentState | None, Query(description="Only agents in this state")] = None,
) -> Response:
    return _json(program.list_agents(page_token=page_token, page_size=page_size, state=state))


@contract.get("/switch", summary="Read the program-level collection switch")
async def get_switch(program: ProgramDep) -> SwitchState:
    return program.switch_state()


@contract.put(
    "/switch",
    summary="Set the program-level collection switch",
    description="Online agents follow the switch at once; offline agents read it when they return. "
    "Setting the value the switch already has changes nothing. Answered once no telemetry write "
    "started before a switch-off can still commit.",
)
async def set_switch(program: ProgramDep, body: SwitchRequest, request: Request) -> SwitchState:
    state = program.set_switch(body, actor=API_ACTOR)
    if not body.enabled:
        await program.settle()
    await request.app.state.faults.after_apply(request, "switch")
    return state


@contract.get("/collection", summary="Read the program's collection profile")
async def get_collection(program: ProgramDep) -> CollectionProfile:
    return program.collection.profile(program.name)


@contract.put(
    "/collection",
    summary="Set the program's collection profile",
    description="The data types agents capture, a subset of `available`; an unknown type is refused with 422 "
    "and changes nothing. Online agents run the new profile at once, offline agents when they return; each "
    "agent reports the profile it runs in the listing (`data_types`). Answered once no telemetry write that "
    "started under the old profile can still commit. Setting the profile already held changes nothing.",
    responses={422: {"description": "A data type this fleet's agents cannot capture."}},
)
async def set_collection(program: ProgramDep, body: CollectionRequest) -> CollectionProfile:
    profile = program.set_collection(body, actor=API_ACTOR)
    await program.settle()
    return profile


_BATCH_DOC = (
    "Per-agent result in request order: `confirmed` (online, in the requested state), `pending` "
    "(offline; the command is delivered when it returns), `not_found`. A request with an idempotency "
    "key already answered returns the stored result with `replayed: true` and applies nothing; the "
    "same key with a different request is refused with 422."
)


@contract.post(
    "/halt",
    response_model=BatchResult,
    summary="Halt a batch of agents",
    description=_BATCH_DOC + " Confirmed only once no telemetry write of those agents can still commit.",
)
async def halt(program: ProgramDep, body: BatchRequest, request: Request) -> Response:
    faults = request.app.state.faults
    body, withheld = faults.split_batch("halt", body)
    result = program.halt(body, actor=API_ACTOR)
    # Also on a replay: the first answer may have been lost while a write was still in flight.
    await program.settle(body.agent_ids)
    await faults.after_apply(request, "halt")
    return _json(faults.answer_batch(result, withheld))


@contract.post(
    "/resume",
    response_model=BatchResult,
    summary="Resume a batch of agents",
    description=_BATCH_DOC + " Refused with 409 while the program switch is disabled (nothing is applied).",
    responses={409: {"description": "The program switch is disabled."}},
)
async def resume(program: ProgramDep, body: BatchRequest, request: Request) -> Response:
    faults = request.app.state.faults
    body, withheld = faults.split_batch("resume", body)
    result = program.resume(body, actor=API_ACTOR)
    await faults.after_apply(request, "resume")
    return _json(faults.answer_batch(result, withheld))


@contract.get(
    "/audit",
    summary="Stream the audit trail for a time window",
    description="NDJSON, one AuditRecord per line, oldest first, `start <= at < end`: switch changes, "
    "batches, per-agent halts and resumes (including commands queued for offline agents and applied on "
    "their return), agents going offline and coming back.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/AuditRecord"}}}}
    },
)
async def audit(
    program: ProgramDep,
    start: Annotated[datetime, Query(description="Inclusive, with a time zone")],
    end: Annotated[datetime, Query(description="Exclusive, with a time zone")],
) -> StreamingResponse:
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(400, "start and end need a time zone (e.g. 2025-01-01T00:00:00Z)")
    if end < start:
        raise HTTPException(400, "end is before start")
    entries = program.audit.window(start.astimezone(UTC), end.astimezone(UTC))
    return StreamingResponse(ndjson_chunks(entries), media_type="application/x-ndjson")


def _error(status: int, headers: dict[str, str] | None = None) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    return handler


def create_app(settings: FleetSettings | None = None) -> FastAPI:
    """The fleet app with its own in-memory fleet; telemetry collectors run in its lifespan."""
    settings = settings or FleetSettings()
    service = FleetService(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.telemetry_dsn.get_secret_value() if settings.telemetry_dsn else None
        collectors = [
            Collector(
                program,
                TelemetrySink(dsn) if dsn else None,
                tick_seconds=settings.tick_seconds,
                max_rows_per_tick=settings.max_rows_per_tick,
                seed=settings.seed,
                faults=app.state.faults,
            )
            for program in service.programs.values()
        ]
        tasks = [asyncio.create_task(c.run(), name=f"telemetry:{c.program.name}") for c in collectors]
        log.info(
            "fleet.started", programs=list(service.programs), agents=settings.agents, telemetry=bool(dsn)
        )
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in collectors:
                if c.sink is not None:
                    await c.sink.close()

    app = FastAPI(
        title="pausegate reference fleet",
        version="1",
        summary="The fleet contract: agents, the program switch, bulk halt and resume, the audit trail.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.token = settings.token.get_secret_value() if settings.token else None
    app.state.faults = FaultInjector(settings.faults, seed=settings.seed)
    app.include_router(contract)
    app.include_router(admin_router)

    app.add_exception_handler(ProgramNotFoundError, _error(404))
    app.add_exception_handler(BadPageTokenError, _error(400))
    app.add_exception_handler(SwitchDisabledError, _error(409))
    app.add_exception_handler(IdempotencyConflictError, _error(422))
    app.add_exception_handler(UnknownDataTypeError, _error(422))
    app.add_exception_handler(SettleTimeoutError, _error(503, {"Retry-After": "1"}))
    app.add_exception_handler(InjectedFaultError, _error(503, {"Retry-After": "1"}))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            # The audit stream's line type appears in no JSON body, so FastAPI would leave it out.
            record = AuditRecord.model_json_schema(ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {}).setdefault("schemas", {})["AuditRecord"] = record
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
